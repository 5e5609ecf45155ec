#include "transport/tls.h"

#include <openssl/ssl.h>

#include <fmt/format.h>

namespace ssl = boost::asio::ssl;

namespace possync {
namespace {

constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

}  // namespace

Result<std::shared_ptr<TlsContext>> TlsContext::load(std::string cert_file, std::string key_file) {
  std::shared_ptr<TlsContext> tls(new TlsContext(std::move(cert_file), std::move(key_file)));
  auto context = tls->build();
  if (!context) return context.error();
  tls->context_ = std::move(*context);
  return tls;
}

Result<std::shared_ptr<ssl::context>> TlsContext::build() const {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                           ssl::context::no_tlsv1_1 | ssl::context::no_compression |
                           ssl::context::single_dh_use,
                       ec);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1) {
    return Error{errc::kInvalidField, "cannot set the TLS 1.2 cipher list"};
  }
  if (!ec) context->use_certificate_chain_file(cert_file_, ec);
  if (ec) {
    return Error{errc::kInvalidField,
                 fmt::format("TLS certificate {}: {}", cert_file_, ec.message())};
  }
  context->use_private_key_file(key_file_, ssl::context::pem, ec);
  if (ec) {
    return Error{errc::kInvalidField, fmt::format("TLS key {}: {}", key_file_, ec.message())};
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    return Error{errc::kInvalidField,
                 fmt::format("TLS key {} does not match certificate {}", key_file_, cert_file_)};
  }
  return context;
}

std::shared_ptr<ssl::context> TlsContext::current() const {
  std::lock_guard lock(mutex_);
  return context_;
}

Result<void> TlsContext::reload() {
  auto context = build();
  if (!context) return context.error();
  std::lock_guard lock(mutex_);
  context_ = std::move(*context);
  return {};
}

}  // namespace possync
