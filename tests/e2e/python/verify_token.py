"""A resource server in another language, as the discovery document lets
anyone write one: given only the edge's discovery URL, its CA and an access
token, find the signing keys (OpenID-style discovery -> jwks_uri ->
PyJWKClient) and verify the token: signature, algorithm, issuer, audience,
expiry. Prints the verified claims as JSON; exits non-zero if the token
does not verify.

    interlock-python verify_token.py DISCOVERY_URL CA_FILE AUDIENCE < token
"""

import json
import ssl
import sys
import urllib.request

import jwt


def main() -> int:
    discovery_url, ca_file, audience = sys.argv[1:4]
    token = sys.stdin.read().strip()
    context = ssl.create_default_context(cafile=ca_file)
    with urllib.request.urlopen(discovery_url, context=context, timeout=10) as answer:
        document = json.load(answer)
    keys = jwt.PyJWKClient(document["jwks_uri"], ssl_context=context, timeout=10)
    signing_key = keys.get_signing_key_from_jwt(token)
    try:
        claims = jwt.decode(
            token,
            signing_key.key,
            algorithms=document["id_token_signing_alg_values_supported"],
            audience=audience,
            issuer=document["issuer"],
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.InvalidTokenError as error:
        print(f"token refused: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(claims))
    return 0


if __name__ == "__main__":
    sys.exit(main())
