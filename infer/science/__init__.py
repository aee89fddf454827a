"""mars_cloudmask.infer.science: tools over many masks (cubes, statistics, reports)."""
