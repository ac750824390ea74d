"""Access: applications, approvals, desensitization, deliveries, and the signed access log.

May read ``catalog``; the catalog never imports this package.
"""
