"""Colour-space helpers: Lab conversion, saturation and colourfulness."""

from colorize.color.lab import lab_to_rgb, rgb_to_lab, rgb_to_l, LabConverter

__all__ = ["lab_to_rgb", "rgb_to_lab", "rgb_to_l", "LabConverter"]
