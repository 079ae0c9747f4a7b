// Internal to the config loader: a listener's `tls:` key. Certificates, keys, the client
// CA bundle and the OCSP response are read and checked with OpenSSL when the config
// loads, so that a bad file is a config error with the file named, never a failure on
// the first handshake. Never puts the content of a private key in a message.
#pragma once

#include <string>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace sluice::config::detail {

// A listener's `tls:` map:
//
//   tls:
//     certificate: cert.pem        # required: PEM chain, leaf first; the default
//     private_key: key.pem         # required: PEM, unencrypted; must match `certificate`
//     certificates:                # more certificates, chosen by SNI
//       - {certificate: other.pem, private_key: other-key.pem}
//     min_version: "1.2"           # "1.2" (default) or "1.3"
//     ciphers: ECDHE+AESGCM        # TLS 1.2 cipher list (OpenSSL syntax); default: sluice's
//     alpn: [http/1.1]             # offered protocols, in preference order ("h2" later)
//     client_ca: clients-ca.pem    # ask for client certificates signed by these CAs
//     client_auth: require         # require (default with client_ca) | optional
//     session_tickets: true        # TLS session tickets (resumption)
//     handshake_timeout: 10s       # whole handshake, from accept
//     ocsp_staple: ocsp.der        # a DER OCSP response stapled for `certificate`
//
// `certificate`/`private_key` become certificates[0], the default (no SNI or an unknown
// name); `certificates` follow in order. Each certificate serves its subjectAltName DNS
// names (lower-cased; wildcards such as "*.example.com" included), else its subject CN;
// two certificates may not serve the same name. Relative paths are taken from
// `config_dir` and stored absolute; messages name files as written.
void readListenerTls(Reader& reader, const Field& field, const std::string& config_dir,
                     ListenerTls& out);

}  // namespace sluice::config::detail
