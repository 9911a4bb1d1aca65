"""The installed app whose modules the documentation's Python blocks run as (tests/docs_examples.py).

It has no models of its own: a page's blocks define theirs, and they are
taken out of Django's registry when the page ends.
"""
