#!/usr/bin/env python3
"""Test certificates, made at test time with the `openssl` command (never committed).

Standard library plus the `openssl` program (Debian package openssl; scripts/install-deps
installs it). Every file is written into the directory you give; nothing else is
touched, so tests running in parallel never share state.

    from tls_certs import new_ca, make_test_pki

    ca = new_ca(directory, "ca", cn="sluice test CA")          # key="ec" or "rsa"
    ca.cert, ca.key                   # PEM paths: DIR/ca.pem, DIR/ca-key.pem
    srv = ca.issue("server", "localhost", dns=["localhost"], ips=["127.0.0.1"])
    srv.cert, srv.key                 # DIR/server.pem, DIR/server-key.pem
    srv.subject, srv.serial           # "CN=localhost", "5F3A..." (upper-case hex)
    srv.pem(), srv.der()              # the certificate's bytes
    cli = ca.issue("client", "alice", usage="client")
    old = ca.issue("old", "old", usage="both", expired=True)   # validity ended days ago
    sub = ca.issue_ca("intermediate", "sluice test intermediate")
    leaf = sub.issue("leaf", "leaf.example.test", dns=["leaf.example.test"], chain=True)
    leaf.cert                         # leaf + intermediate (a chain file, PEM)

    pki = make_test_pki(directory)    # the usual set, see TestPki below

Certificates are valid from one hour ago (clock skew) for 30 days unless expired=True
(valid from 20 days ago to 10 days ago). Serial numbers are random (64 bits). Leaf
certificates carry basicConstraints CA:FALSE, keyUsage, extendedKeyUsage (serverAuth,
clientAuth or both), subject and authority key identifiers and, when given,
subjectAltName DNS and IP entries, so that strict verifiers accept them.
"""

import datetime
import os
import secrets
import shutil
import subprocess

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


class OpenSSLError(RuntimeError):
    """An `openssl` command failed; the message holds its command line and output."""


def openssl_available():
    return os.path.exists(OPENSSL)


def openssl(*args, cwd=None, input=None, timeout=60):
    """Runs `openssl ARGS...`; returns stdout (bytes); raises OpenSSLError on failure."""
    p = subprocess.run([OPENSSL, *args], cwd=cwd, input=input, capture_output=True,
                       timeout=timeout)
    if p.returncode != 0:
        raise OpenSSLError("openssl %s failed (exit %d):\n%s%s"
                           % (" ".join(args), p.returncode,
                              p.stdout.decode(errors="replace"),
                              p.stderr.decode(errors="replace")))
    return p.stdout


def _keygen_args(key):
    if key == "ec":
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    if key == "rsa":
        return ["-newkey", "rsa:2048"]
    raise ValueError("key must be 'ec' or 'rsa', not %r" % (key,))


def _asn1_time(t):
    return t.strftime("%Y%m%d%H%M%SZ")


class Cert:
    """A certificate and its private key, as PEM files."""

    def __init__(self, directory, name, cert, key, subject, serial, issuer=None):
        self.directory = directory
        self.name = name
        self.cert = cert        # path; for chain=True: the leaf followed by the issuer(s)
        self.key = key          # path (unencrypted PKCS#8 PEM)
        self.subject = subject  # "CN=..." as given
        self.serial = serial    # upper-case hex, no leading zeros
        self.issuer = issuer    # the CA that signed it (None for a root)

    def pem(self):
        with open(self.cert, "rb") as f:
            return f.read()

    def der(self):
        """DER of the first certificate in the file (the leaf)."""
        return openssl("x509", "-in", self.cert, "-outform", "DER")

    def __repr__(self):
        return "<Cert %s %s serial=%s>" % (self.name, self.subject, self.serial)


class CA(Cert):
    """A certificate authority that issues certificates into its own directory."""

    def issue(self, name, cn, dns=(), ips=(), usage="server", key="ec", expired=False,
              days=30, chain=False, directory=None):
        """Issues NAME.pem / NAME-key.pem (in `directory`, default the CA's own).
        usage: "server", "client" or "both" (extendedKeyUsage). chain=True appends this
        CA's certificate chain (not the root) to NAME.pem."""
        eku = {"server": "serverAuth", "client": "clientAuth",
               "both": "serverAuth,clientAuth"}[usage]
        ext = ["basicConstraints=critical,CA:FALSE",
               "keyUsage=critical,digitalSignature,keyEncipherment",
               "extendedKeyUsage=%s" % eku,
               "subjectKeyIdentifier=hash",
               "authorityKeyIdentifier=keyid,issuer"]
        sans = ["DNS:%s" % d for d in dns] + ["IP:%s" % i for i in ips]
        if sans:
            ext.append("subjectAltName=" + ",".join(sans))
        return self._sign(directory or self.directory, name, cn, ext, key, expired, days,
                          chain, Cert)

    def issue_ca(self, name, cn, key="ec", days=30, directory=None):
        """An intermediate CA signed by this one (its certificate file holds only itself;
        issue(chain=True) from it appends it to the leaf)."""
        ext = ["basicConstraints=critical,CA:TRUE,pathlen:0",
               "keyUsage=critical,keyCertSign,cRLSign",
               "subjectKeyIdentifier=hash",
               "authorityKeyIdentifier=keyid,issuer"]
        return self._sign(directory or self.directory, name, cn, ext, key, False, days,
                          False, CA)

    def chain_pem(self):
        """This CA's certificate and its issuers' up to (not including) the root."""
        if self.issuer is None:
            return b""
        return self.pem() + self.issuer.chain_pem()

    def _sign(self, directory, name, cn, ext, key, expired, days, chain, cls):
        os.makedirs(directory, exist_ok=True)
        cert = os.path.join(directory, name + ".pem")
        keyfile = os.path.join(directory, name + "-key.pem")
        csr = os.path.join(directory, name + ".csr")
        extfile = os.path.join(directory, name + ".ext")
        subject = "CN=" + cn
        openssl("req", "-new", *_keygen_args(key), "-nodes", "-subj", "/" + subject,
                "-keyout", keyfile, "-out", csr)
        with open(extfile, "w") as f:
            f.write("\n".join(ext) + "\n")
        serial = secrets.randbits(63) | (1 << 62)  # positive, 8 bytes, never 0
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        if expired:
            start, end = now - datetime.timedelta(days=20), now - datetime.timedelta(days=10)
        else:
            start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days)
        self._ca_sign(directory, name, csr, extfile, cert, serial, start, end)
        if chain:
            with open(cert, "ab") as f:
                f.write(self.chain_pem())
        for tmp in (csr, extfile):
            os.unlink(tmp)
        return cls(directory, name, cert, keyfile, subject, "%X" % serial, issuer=self)

    def _ca_sign(self, directory, name, csr, extfile, out, serial, start, end):
        """`openssl ca` (not `x509 -req`): it takes explicit start and end dates, which
        an expired certificate needs. Its database lives in a scratch directory."""
        work = os.path.join(directory, ".ca-%s-%s" % (name, secrets.token_hex(4)))
        os.makedirs(work)
        try:
            open(os.path.join(work, "index.txt"), "w").close()
            with open(os.path.join(work, "serial"), "w") as f:
                f.write("%016X\n" % serial)  # 16 digits: bit 62 is set
            cnf = os.path.join(work, "ca.cnf")
            with open(cnf, "w") as f:
                f.write("[ca]\ndefault_ca = test_ca\n"
                        "[test_ca]\n"
                        "dir = %s\n"
                        "database = $dir/index.txt\n"
                        "serial = $dir/serial\n"
                        "new_certs_dir = $dir\n"
                        "certificate = %s\n"
                        "private_key = %s\n"
                        "default_md = sha256\n"
                        "policy = policy_any\n"
                        "unique_subject = no\n"
                        "email_in_dn = no\n"
                        "copy_extensions = none\n"
                        "[policy_any]\ncommonName = supplied\n"
                        % (work, self.cert, self.key))
            openssl("ca", "-batch", "-config", cnf, "-in", csr, "-out", out, "-notext",
                    "-startdate", _asn1_time(start), "-enddate", _asn1_time(end),
                    "-extfile", extfile, "-preserveDN")
        finally:
            shutil.rmtree(work, ignore_errors=True)


def new_ca(directory, name="ca", cn="sluice test CA", key="ec", days=30):
    """A self-signed root CA: DIR/NAME.pem and DIR/NAME-key.pem."""
    os.makedirs(directory, exist_ok=True)
    cert = os.path.join(directory, name + ".pem")
    keyfile = os.path.join(directory, name + "-key.pem")
    serial = secrets.randbits(63) | (1 << 62)
    openssl("req", "-x509", *_keygen_args(key), "-nodes", "-days", str(days),
            "-subj", "/CN=" + cn, "-set_serial", str(serial),
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", keyfile, "-out", cert)
    return CA(directory, name, cert, keyfile, "CN=" + cn, "%X" % serial)


class TestPki:
    """The usual set, all in one directory (file names = attribute names):

    ca              root CA "sluice test CA" (trust this one)
    server          EC, CN=localhost; SAN DNS localhost, DNS secure.example.test,
                    IP 127.0.0.1 — the default certificate of a listener
    server_rsa      the same names with an RSA key (CN=localhost rsa)
    wildcard        EC, CN=*.example.test; SAN DNS *.example.test
    exact           RSA, CN=api.example.test; SAN DNS api.example.test (an exact name
                    under the wildcard)
    client          clientAuth, CN=sluice test client, signed by ca
    other_ca        another root CA "sluice other CA" (not trusted by anyone)
    other_client    clientAuth, CN=sluice other client, signed by other_ca
    other_server    server cert for localhost/127.0.0.1 signed by other_ca
    expired         serverAuth+clientAuth, CN=sluice expired; SAN localhost and
                    127.0.0.1; signed by ca, validity ended 10 days ago
    """

    def __init__(self, directory, key="ec"):
        self.directory = directory
        self.ca = new_ca(directory, "ca", "sluice test CA", key=key)
        self.server = self.ca.issue("server", "localhost",
                                    dns=["localhost", "secure.example.test"],
                                    ips=["127.0.0.1"], key=key)
        self.server_rsa = self.ca.issue("server_rsa", "localhost rsa",
                                        dns=["localhost", "secure.example.test"],
                                        ips=["127.0.0.1"], key="rsa")
        self.wildcard = self.ca.issue("wildcard", "*.example.test", dns=["*.example.test"],
                                      key=key)
        self.exact = self.ca.issue("exact", "api.example.test", dns=["api.example.test"],
                                   key="rsa")
        self.client = self.ca.issue("client", "sluice test client", usage="client", key=key)
        self.other_ca = new_ca(directory, "other_ca", "sluice other CA", key=key)
        self.other_client = self.other_ca.issue("other_client", "sluice other client",
                                                usage="client", key=key)
        self.other_server = self.other_ca.issue("other_server", "localhost other",
                                                dns=["localhost"], ips=["127.0.0.1"],
                                                key=key)
        self.expired = self.ca.issue("expired", "sluice expired", dns=["localhost"],
                                     ips=["127.0.0.1"], usage="both", expired=True, key=key)


def make_test_pki(directory, key="ec"):
    return TestPki(directory, key)


def describe(cert_path):
    """`openssl x509 -noout -subject -serial -dates -ext subjectAltName` of a file."""
    return openssl("x509", "-in", cert_path, "-noout", "-subject", "-issuer", "-serial",
                   "-dates", "-ext", "subjectAltName").decode()


if __name__ == "__main__":
    # Smoke test: python3 tls_certs.py [DIR]
    import sys
    import tempfile
    d = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="sluice-pki-")
    pki = make_test_pki(d)
    for attr in ("ca", "server", "server_rsa", "wildcard", "exact", "client", "other_ca",
                 "other_client", "other_server", "expired"):
        c = getattr(pki, attr)
        print("== %s: %s\n%s" % (attr, c.cert, describe(c.cert)))
