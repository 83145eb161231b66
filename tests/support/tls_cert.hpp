#pragma once

// A self-signed certificate made at test time with OpenSSL's C API (no files, no openssl CLI):
// an EC P-256 key and an X.509 v3 certificate that is its own CA, with the given subject
// alternative names ("IP:127.0.0.1", "DNS:localhost").

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace test {

struct SelfSigned {
  std::string cert_pem;
  std::string key_pem;
};

inline SelfSigned make_self_signed(std::string const& common_name, std::string const& alt_names) {
  auto fail = [](char const* what) { throw std::runtime_error(std::string("make_self_signed: ") + what); };
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  if (!key) fail("EVP_EC_gen");
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), X509_free);
  if (!x) fail("X509_new");
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 24 * 3600);
  X509_set_pubkey(x.get(), key.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<unsigned char const*>(common_name.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
  auto add = [&](int nid, char const* value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (!ext) fail("X509V3_EXT_conf_nid");
    X509_add_ext(x.get(), ext, -1);
    X509_EXTENSION_free(ext);
  };
  add(NID_basic_constraints, "critical,CA:TRUE");
  add(NID_key_usage, "critical,keyCertSign,digitalSignature");
  add(NID_ext_key_usage, "serverAuth");
  add(NID_subject_alt_name, alt_names.c_str());
  if (!X509_sign(x.get(), key.get(), EVP_sha256())) fail("X509_sign");

  auto pem = [&](auto&& write) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    if (!write(bio.get())) fail("PEM_write");
    char* data = nullptr;
    long const n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
  };
  SelfSigned out;
  out.cert_pem = pem([&](BIO* b) { return PEM_write_bio_X509(b, x.get()); });
  out.key_pem = pem([&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
  return out;
}

}  // namespace test
