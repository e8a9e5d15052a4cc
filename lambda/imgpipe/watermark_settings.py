"""The watermark's settings, declared once: positions, defaults and bounds.

Free of Pillow, so the config reader (``imgpipe.resize_config``) can check them
without loading the image library; ``imgpipe.watermark`` takes its defaults and
checks from here too. Terraform's ``watermark_*`` variables repeat these
defaults and bounds in HCL; ``tests/test_watermark_settings.py`` keeps them equal.
"""

from __future__ import annotations

from imgpipe.settings import Integer, Number

POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right", "center")
DEFAULT_POSITION = "bottom-right"
OPACITY = Number("WATERMARK_OPACITY", 0.5, 0.0, 1.0)
# A fraction of the rendition's shorter side: half of it would leave no room for the mark.
MARGIN = Number("WATERMARK_MARGIN", 0.02, 0.0, 0.5, hi_open=True)
# The mark's width over the rendition's: a mark of no width is no mark.
SCALE = Number("WATERMARK_SCALE", 0.25, 0.0, 1.0, lo_open=True)
MIN_SIZE = Integer("WATERMARK_MIN_SIZE", 300, 0)
