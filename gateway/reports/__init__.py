"""Reports in the admin, read from the daily aggregate (UsageDaily), and the request log's list page."""
