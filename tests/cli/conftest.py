from tests.pipeline.conftest import _few_threads, register_fake  # noqa: F401 - shared fixtures
