"""mars_cloudmask.benchmarks"""
