#!/usr/bin/env python3
"""A real SAML 2.0 identity provider for Roster's tests (tests/api/saml_harness.rs), built on
pysaml2 (tools/requirements.txt) with Debian's xmlsec1 doing the signing.

    saml_idp.py [--xmlsec1 /usr/bin/xmlsec1]

Listens on 127.0.0.1 on a free port and prints `LISTENING <port>` on stdout once it serves.
A key and a self-signed certificate are made with `openssl` at start (a second pair too, for
the "signed by someone else" case), in a temporary directory removed at exit.

Routes:
  GET  /metadata        the IdP's EntityDescriptor (entityID = this URL), signing certificate,
                        SingleSignOnService for the HTTP-Redirect binding at /sso/redirect
  POST /sp              registers a service provider: the body is its metadata XML (what an
                        IdP's admin pastes from Roster's `.../metadata` route)
  GET  /sso/redirect    takes `SAMLRequest` (+ `RelayState`), parses the AuthnRequest, and
                        answers a sign-in form (hidden fields, a `login` email field)
  POST /login           the form: `login` (the email to assert), `SAMLRequest`, `RelayState`,
                        optional `given_name`, `family_name`, and `misbehave` (comma-separated
                        knobs, below). Answers the HTML form that auto-posts `SAMLResponse`
                        and `RelayState` to the request's AssertionConsumerServiceURL.

`misbehave` knobs (the IdP breaks the rule, then signs as told):
  unsigned            nothing signed
  sign-response       the Response signed instead of the Assertion
  sign-both           both signed
  other-key           signed with a key that is not in the metadata
  expired             Conditions and SubjectConfirmationData ended 10 minutes ago
  not-yet-valid       Conditions start in 10 minutes
  wrong-audience      the Audience is another SP
  wrong-recipient     SubjectConfirmationData Recipient is another URL
  wrong-destination   the Response's Destination is another URL
  wrong-issuer        the Issuer is another entity (response and assertion)
  wrong-assertion-issuer  only the assertion's Issuer is another entity
  expired-confirmation    only SubjectConfirmationData ended 10 minutes ago
  sha1                signed with RSA-SHA1 and SHA-1 digests
  wrong-in-response-to  InResponseTo names a request never made
  idp-error           Status Responder, no assertion
  no-email            NameID transient, no email attribute
  attribute-email     NameID transient, the email in the `email` attribute only
"""

import argparse
import base64
import html
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, samlp
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAME_FORMAT_BASIC, NAMEID_FORMAT_EMAILADDRESS, NAMEID_FORMAT_TRANSIENT, NameID
from saml2.s_utils import factory
from saml2.server import Server
from saml2.sigver import pre_signature_part
from saml2.xmldsig import DIGEST_SHA1, DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256

KNOBS = {
    "unsigned", "sign-response", "sign-both", "other-key", "expired", "not-yet-valid", "wrong-audience",
    "wrong-recipient", "wrong-destination", "wrong-issuer", "wrong-assertion-issuer", "expired-confirmation", "sha1", "wrong-in-response-to", "idp-error", "no-email",
    "attribute-email",
}


def make_key_pair(directory, name):
    key, cert = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.crt")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
         "-keyout", key, "-out", cert],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return key, cert


def saml_time(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class Idp:
    def __init__(self, base, keys_dir, xmlsec1):
        self.base = base
        key, cert = make_key_pair(keys_dir, "idp")
        self.other_key, self.other_cert = make_key_pair(keys_dir, "other")
        self.lock = threading.Lock()
        self.config = IdPConfig()
        self.config.load({
            "entityid": f"{base}/metadata",
            "xmlsec_binary": xmlsec1,
            "key_file": key,
            "cert_file": cert,
            "metadata": {},
            "service": {
                "idp": {
                    "name": "Roster test IdP",
                    "endpoints": {"single_sign_on_service": [(f"{base}/sso/redirect", BINDING_HTTP_REDIRECT)]},
                    "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                    "want_authn_requests_signed": False,
                    "policy": {"default": {"lifetime": {"minutes": 5}, "name_form": NAME_FORMAT_BASIC}},
                },
            },
        })
        self.server = Server(config=self.config)

    def metadata(self):
        return create_metadata_string(None, config=self.config, valid=2, sign=False).decode()

    def add_sp(self, xml):
        with self.lock:
            self.server.metadata.load("inline", xml)

    def parse_request(self, saml_request):
        return self.server.parse_authn_request(saml_request, BINDING_HTTP_REDIRECT).message

    def respond(self, saml_request, login, given, family, knobs):
        request = self.parse_request(saml_request)
        acs = request.assertion_consumer_service_url
        sp = request.issuer.text
        in_response_to = "_never-requested-" + os.urandom(8).hex() if "wrong-in-response-to" in knobs else request.id
        if "idp-error" in knobs:
            response = self.server.create_error_response(
                in_response_to, acs, (samlp.STATUS_RESPONDER, "the user could not be signed in"), sign=False)
            return acs, str(response)
        identity = {}
        if "no-email" not in knobs:
            if "attribute-email" in knobs:
                identity["email"] = [login]
            else:
                identity["mail"] = [login]
            if given:
                identity["givenName"] = [given]
            if family:
                identity["sn"] = [family]
        if "no-email" in knobs or "attribute-email" in knobs:
            name_id = NameID(format=NAMEID_FORMAT_TRANSIENT, text="_" + os.urandom(12).hex())
        else:
            name_id = NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=login)
        with self.lock:
            response = self.server.create_authn_response(
                identity, in_response_to, acs, sp, name_id=name_id,
                authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"},
                sign_response=False, sign_assertion=False)
        response = samlp.response_from_string(str(response))
        assertion = response.assertion[0]
        now = datetime.now(timezone.utc)
        confirmation = assertion.subject.subject_confirmation[0].subject_confirmation_data
        if "expired" in knobs:
            assertion.conditions.not_on_or_after = saml_time(now - timedelta(minutes=10))
            confirmation.not_on_or_after = saml_time(now - timedelta(minutes=10))
        if "expired-confirmation" in knobs:
            confirmation.not_on_or_after = saml_time(now - timedelta(minutes=10))
        if "wrong-assertion-issuer" in knobs:
            assertion.issuer.text = "https://other-idp.example/metadata"
        if "not-yet-valid" in knobs:
            assertion.conditions.not_before = saml_time(now + timedelta(minutes=10))
        if "wrong-audience" in knobs:
            assertion.conditions.audience_restriction[0].audience[0].text = "https://other-sp.example/metadata"
        if "wrong-recipient" in knobs:
            confirmation.recipient = "https://other-sp.example/acs"
        if "wrong-destination" in knobs:
            response.destination = "https://other-sp.example/acs"
        if "wrong-issuer" in knobs:
            assertion.issuer.text = "https://other-idp.example/metadata"
            response.issuer.text = "https://other-idp.example/metadata"
        return acs, self.sign(response, assertion, knobs)

    def sign(self, response, assertion, knobs):
        if "unsigned" in knobs:
            return str(response)
        key_file = self.other_key if "other-key" in knobs else None
        cert = self.server.sec.my_cert
        if "other-key" in knobs:
            with open(self.other_cert) as f:
                cert = "".join(line for line in f.read().splitlines() if "-----" not in line)
        sign_assertion = "sign-response" not in knobs
        sign_response = "sign-response" in knobs or "sign-both" in knobs
        if "sha1" in knobs:
            parts = dict(public_key=cert, digest_alg=DIGEST_SHA1, sign_alg=SIG_RSA_SHA1)
        else:
            parts = dict(public_key=cert, digest_alg=DIGEST_SHA256, sign_alg=SIG_RSA_SHA256)
        if sign_assertion:
            assertion.signature = pre_signature_part(assertion.id, **parts)
        if sign_response:
            response.signature = pre_signature_part(response.id, **parts)
        xml = str(response)
        if sign_assertion:
            xml = self.server.sec.sign_statement(
                xml, node_name="urn:oasis:names:tc:SAML:2.0:assertion:Assertion", key_file=key_file,
                node_id=assertion.id)
        if sign_response:
            xml = self.server.sec.sign_statement(
                xml, node_name="urn:oasis:names:tc:SAML:2.0:protocol:Response", key_file=key_file,
                node_id=response.id)
        return xml


def page(title, body):
    return f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title></head><body>{body}</body></html>"


def hidden(name, value):
    return f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value or "")}">'


class Handler(BaseHTTPRequestHandler):
    idp = None

    def log_message(self, fmt, *args):
        sys.stderr.write("saml_idp: " + (fmt % args) + "\n")

    def answer(self, status, body, content_type="text/html; charset=utf-8"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode()

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        try:
            if url.path == "/metadata":
                return self.answer(200, self.idp.metadata(), "application/samlmetadata+xml")
            if url.path == "/sso/redirect":
                saml_request = query.get("SAMLRequest")
                if not saml_request:
                    return self.answer(400, page("error", "SAMLRequest is missing"))
                request = self.idp.parse_request(saml_request)
                form = (
                    '<form method="post" action="/login">'
                    + hidden("SAMLRequest", saml_request) + hidden("RelayState", query.get("RelayState"))
                    + f'<p>Signing in to {html.escape(request.issuer.text)}</p>'
                    + '<label>Email <input name="login" type="email"></label><button>Sign in</button></form>'
                )
                return self.answer(200, page("Sign in", form))
            return self.answer(404, page("not found", "no such page"))
        except Exception as e:  # a bad request from the test: say what was wrong
            return self.answer(400, page("error", html.escape(f"{type(e).__name__}: {e}")))

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        try:
            if url.path == "/sp":
                self.idp.add_sp(self.body())
                return self.answer(204, "")
            if url.path == "/login":
                form = dict(urllib.parse.parse_qsl(self.body()))
                knobs = {k.strip() for k in form.get("misbehave", "").split(",") if k.strip()}
                unknown = knobs - KNOBS
                if unknown:
                    return self.answer(400, page("error", html.escape(f"unknown misbehave knobs: {sorted(unknown)}")))
                acs, xml = self.idp.respond(
                    form["SAMLRequest"], form.get("login", ""), form.get("given_name"), form.get("family_name"), knobs)
                encoded = base64.b64encode(xml.encode()).decode()
                auto_post = (
                    f'<form method="post" action="{html.escape(acs)}">'
                    + hidden("SAMLResponse", encoded) + hidden("RelayState", form.get("RelayState"))
                    + '<noscript><button>Continue</button></noscript></form>'
                    + "<script>document.forms[0].submit()</script>"
                )
                return self.answer(200, page("Signing in", auto_post))
            return self.answer(404, page("not found", "no such page"))
        except Exception as e:
            return self.answer(400, page("error", html.escape(f"{type(e).__name__}: {e}")))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--xmlsec1", default=shutil.which("xmlsec1") or "/usr/bin/xmlsec1")
    args = parser.parse_args()
    keys_dir = tempfile.mkdtemp(prefix="roster-saml-idp-")
    try:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = httpd.server_address[1]
        Handler.idp = Idp(f"http://127.0.0.1:{port}", keys_dir, args.xmlsec1)
        print(f"LISTENING {port}", flush=True)
        httpd.serve_forever()
    finally:
        shutil.rmtree(keys_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
