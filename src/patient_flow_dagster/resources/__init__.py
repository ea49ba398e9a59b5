"""Resources: the Spark session, the lake's table locator, the landing zone."""
