"""Everything that speaks Label Studio: the HTTP client, labeling configs, label maps,
matching images to tasks, importing tasks, building and posting predictions, pulling
annotations back, and the local server helper.
"""
