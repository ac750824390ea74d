"""Quality: Great Expectations suites and scores per resource, and the data bureau's audit.

May read ``catalog``; the catalog never imports this package.
"""
