"""Signs a JWT with PyJWT (python3-jwt), as an OIDC provider or another
service would.

usage: python3 pyjwt_sign.py ALG PRIVATE_KEY_PEM_FILE KID CLAIMS_JSON
(KID "" sends no kid header) prints the compact token.
"""
import json
import sys

import jwt

alg, key_file, kid, claims = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
with open(key_file, "rb") as f:
    key = f.read()
headers = {"kid": kid} if kid else None
print(jwt.encode(claims, key, algorithm=alg, headers=headers))
