"""The demo (`make demo`), its synthetic task, and helpers the image test and README share."""
