// TLS for HTTPS and WSS on the server's one port (--tls-cert / --tls-key, PEM files).
//
// TLS 1.2 and 1.3 only, with forward-secret AEAD cipher suites (Mozilla's "intermediate" choice
// for TLS 1.2: ECDHE with AES-GCM or ChaCha20-Poly1305), no compression, no renegotiation.
// reload() reads the files again (on SIGHUP): new connections use the new certificate; open ones
// keep the context they started with (each session holds a reference to it), so nothing drops.
// A pair that fails to load is reported and the previous one stays in use.
//
// Thread-safety: current() and reload() may be called from any thread.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <mutex>
#include <string>

#include "common/error.h"

namespace possync {

class TlsContext {
 public:
  // Loads the certificate chain and key; an Error if either cannot be used.
  static Result<std::shared_ptr<TlsContext>> load(std::string cert_file, std::string key_file);

  std::shared_ptr<boost::asio::ssl::context> current() const;
  Result<void> reload();

 private:
  TlsContext(std::string cert_file, std::string key_file)
      : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)) {}
  Result<std::shared_ptr<boost::asio::ssl::context>> build() const;

  const std::string cert_file_;
  const std::string key_file_;
  mutable std::mutex mutex_;
  std::shared_ptr<boost::asio::ssl::context> context_;
};

}  // namespace possync
