"""Suite-wide settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # The tests use tiny tensors: on the 2-core CI machine, thread hand-offs cost more than the
    # work, and OpenMP oversubscription with the pipeline's own threads makes them much slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
