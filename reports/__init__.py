"""The claims report: a pytest plugin, its data model, the paper's figures and the HTML page."""
