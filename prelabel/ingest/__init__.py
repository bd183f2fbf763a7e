"""Where images come from: sources (folders, S3, URL lists, REST pages, video, a project's
own tasks), the concurrent fetcher, stratified sampling and manifests.

May use ``prelabel.store`` (S3 client, URIs) and ``prelabel.labelstudio`` (a project's
own images); nothing above it.
"""
