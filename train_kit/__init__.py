"""mars_cloudmask.train_kit"""
