"""upstream_sim."""
