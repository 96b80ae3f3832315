// roomcast-verify-bench: CPU per token check (server/auth.h Verifier::verify), the cost every upgrade with
// a token pays; HS256 by default, --alg RS256/ES256 for the public-key paths (libjwt). Prints one line.
//   roomcast-verify-bench [--alg HS256|RS256|ES256] [--n 100000]
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "server/auth.h"

using roomcast::server::AuthGrant;
using roomcast::server::AuthRefusal;
using roomcast::server::AuthSettings;
using roomcast::server::Verifier;

namespace {

// A fresh key pair: the private PEM (to sign) and the public key's file (the server's setting).
bool make_key(const char* alg, std::string* private_pem, std::string* public_path) {
  EVP_PKEY* pkey = strcmp(alg, "RS256") == 0 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048))
                                             : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (!pkey) return false;
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  char* data;
  long n = BIO_get_mem_data(b, &data);
  private_pem->assign(data, static_cast<size_t>(n));
  BIO_free(b);
  char path[] = "/tmp/roomcast-verify-bench-XXXXXX";
  int fd = mkstemp(path);
  FILE* f = fd >= 0 ? fdopen(fd, "w") : nullptr;
  bool ok = f && PEM_write_PUBKEY(f, pkey) == 1;
  if (f) fclose(f);
  EVP_PKEY_free(pkey);
  *public_path = path;
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  std::string alg = "HS256";
  long n = 100000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--alg") == 0) alg = argv[i + 1];
    else if (strcmp(argv[i], "--n") == 0) n = atol(argv[i + 1]);
  }
  if (argc % 2 == 0 || n <= 0 || (alg != "HS256" && alg != "RS256" && alg != "ES256")) {
    fprintf(stderr, "usage: roomcast-verify-bench [--alg HS256|RS256|ES256] [--n 100000]\n");
    return 2;
  }
  const int64_t now = time(nullptr);
  AuthSettings settings;
  std::string token;
  if (alg == "HS256") {
    roomcast::server::MintOptions o;
    o.secret = "0123456789abcdef0123456789abcdef";
    o.sub = "user-12345";
    o.name = "Alice";
    o.rooms = {"team-*"};
    o.now_s = now;
    settings.secrets = {o.secret};
    token = roomcast::server::mint_hs256(o);
  } else {
    std::string private_pem, public_path;
    if (!make_key(alg.c_str(), &private_pem, &public_path)) return 1;
    settings.public_keys = {public_path};
    jwt_t* j = nullptr;
    jwt_new(&j);
    jwt_set_alg(j, jwt_str_alg(alg.c_str()), reinterpret_cast<const unsigned char*>(private_pem.data()),
                static_cast<int>(private_pem.size()));
    jwt_add_grant(j, "sub", "user-12345");
    jwt_add_grant_int(j, "exp", static_cast<long>(now + 3600));
    char* s = jwt_encode_str(j);
    token = s ? s : "";
    free(s);
    jwt_free(j);
  }
  Verifier v;
  std::string err = v.configure(settings);
  if (!settings.public_keys.empty()) unlink(settings.public_keys[0].c_str());
  if (!err.empty() || token.empty()) {
    fprintf(stderr, "roomcast-verify-bench: %s\n", err.empty() ? "could not sign" : err.c_str());
    return 1;
  }
  long ok = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n; i++) {
    AuthGrant g;
    ok += v.verify(token, now, &g) == AuthRefusal::None;
  }
  double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / static_cast<double>(n);
  printf("%s: %.2f us per verify (%ld of %ld accepted, token %zu bytes)\n", alg.c_str(), us, ok, n, token.size());
  return ok == n ? 0 : 1;
}
