"""Image pipeline core: pure modules shared by the Lambda handlers.

Nothing in this package except ``aws.py`` talks to AWS; the image engine works
on bytes in and bytes out.
"""
