"""The HTTP edge: the REST API, pages for people, the CLI and the application factory."""
