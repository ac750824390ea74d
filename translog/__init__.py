"""The signed, tamper-evident access log (RFC 9162 Merkle tree, Ed25519-signed tree heads).

``canonical``, ``merkle`` and ``verify`` import only the standard library and ``cryptography``,
so the offline verifier runs without the database, the server or the rest of govshare.
"""
