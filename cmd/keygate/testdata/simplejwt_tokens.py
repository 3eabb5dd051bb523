"""Mints an access and a refresh token with djangorestframework-simplejwt's
defaults (HS256 signed with the Django SECRET_KEY; claims token_type, exp,
iat, jti, user_id), as a Django app using the library would.

usage: python3 simplejwt_tokens.py SECRET_KEY USER_ID
prints: {"access": "...", "refresh": "...", "access_jti": "..."}
"""
import json
import sys

import django
from django.conf import settings

settings.configure(
    SECRET_KEY=sys.argv[1],
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
    DATABASES={},
    USE_TZ=True,
)
django.setup()

from rest_framework_simplejwt.settings import api_settings  # noqa: E402
from rest_framework_simplejwt.tokens import RefreshToken  # noqa: E402

refresh = RefreshToken()
refresh[api_settings.USER_ID_CLAIM] = int(sys.argv[2])
access = refresh.access_token
print(json.dumps({"access": str(access), "refresh": str(refresh), "access_jti": access["jti"]}))
