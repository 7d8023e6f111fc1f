"""Small widgets and helpers shared by the pages (plots, background tasks, page headers)."""
