"""What a run reports: the summary tables and CSVs (``summary``) and the contact sheet of
predictions drawn on images (``contactsheet``).
"""
