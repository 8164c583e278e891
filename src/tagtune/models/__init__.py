"""Models and devices: loading from the Hub, devices and dtypes, seeded sampling, the Lightning trainer."""
