"""Input sizes the tests share."""

DEMO_CALIBRATION_SIZE = 225  # small, to keep CI fast; the model runs at any size after
