"""mars_cloudmask.export"""
