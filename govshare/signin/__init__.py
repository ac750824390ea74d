"""How people sign in to the web UI: OpenID Connect, local passwords with TOTP, or an API token,
each ending in a server-side session behind a signed cookie (docs/security.md)."""
