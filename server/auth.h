// Token authentication (PROTOCOL.md section 8): JWT keys, verification, claims, minting for tests.
// Rule: the algorithm comes from the key, never from the token; no token or key is ever logged. No libuv here.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/ids.h"

struct evp_pkey_ctx_st;  // OpenSSL's EVP_PKEY_CTX

namespace roomcast::server {

// Why a token was refused (each counted in roomcast_auth_refused_total{reason=..}).
enum class AuthRefusal : uint8_t {
  None,          // accepted
  Missing,       // no token where one is needed
  Malformed,     // not three base64url JSON parts, or an unknown alg
  TooLarge,      // over kMaxTokenBytes (refused before parsing)
  BadSignature,  // no key of the right kind verified it
  AlgMismatch,   // alg none, or an alg that does not match the key's type
  Expired,       // exp (+ leeway) has passed
  NotYetValid,   // nbf or iat (- leeway) still ahead
  Audience,      // --jwt-audience configured and not in aud
  Issuer,        // --jwt-issuer configured and iss differs
  NoKey,         // the header names a kid that no key has
  BadClaims,     // sub missing or outside the id alphabet, a bad name, rooms, or a claim of the wrong type
  kCount
};
// The label value ("missing", "bad_signature", ...).
const char* auth_refusal_name(AuthRefusal r);

constexpr size_t kMaxTokenBytes = 4096;

// What an accepted token grants.
struct AuthGrant {
  protocol::User user;              // id = sub, name = name or sub
  int64_t exp = 0;                  // seconds since the epoch; 0: the token does not expire
  bool rooms_limited = false;       // the token has a `rooms` claim
  std::vector<std::string> rooms;   // room ids, or prefixes ending in '*'
  // True when room_id is allowed (always, without a `rooms` claim).
  bool may_enter(std::string_view room_id) const;
};

struct AuthSettings {
  std::vector<std::string> secrets;      // "SECRET" or "KID=SECRET" (HS256)
  std::vector<std::string> public_keys;  // "PATH" or "KID=PATH" (PEM; RSA: RS256, EC P-256: ES256)
  std::string audience;                  // empty: aud not checked
  std::string issuer;                    // empty: iss not checked
  int64_t leeway_s = 60;                 // clock leeway for exp, nbf, iat
};

class Verifier {
 public:
  enum class KeyType : uint8_t { Hmac, Rsa, Ec };
  struct Key {
    std::string kid;       // empty: no id (tried for any token of its algorithm without kid)
    KeyType type;
    std::string material;  // the secret, or the PEM text
    std::shared_ptr<evp_pkey_ctx_st> verifier;  // RSA or EC: the key, parsed once (load_pem), set up to verify SHA-256
    std::string path;      // the PEM file (reloaded on SIGHUP); empty for secrets
  };

  // Loads every key. Returns "" or why a setting is unusable (the message names no secret).
  std::string configure(const AuthSettings& settings);
  // Re-reads the key files. Returns ""; or why not, and then the keys in use stay as they were.
  std::string reload();
  // True when at least one key is configured (authentication is on).
  bool enabled() const { return !keys_.empty(); }
  size_t key_count() const { return keys_.size(); }
  // Checks token at now_s (seconds since the epoch). Returns None and fills grant, or the refusal.
  AuthRefusal verify(std::string_view token, int64_t now_s, AuthGrant* grant) const;

 private:
  // Loads the PEM file of k (path and kid already set). Returns "" or why not.
  static std::string load_pem(Key* k);
  AuthRefusal check_claims(const std::string& claims_json, int64_t now_s, AuthGrant* grant) const;

  AuthSettings settings_;
  std::vector<Key> keys_;
};

// Splits "KID=VALUE" (kid: 1-64 characters of the room-id alphabet, value not empty) or returns value whole.
void split_kid(const std::string& setting, std::string* kid, std::string* value);

// The Authorization: Bearer token of a header value, or empty.
std::string_view bearer_token(std::string_view authorization);

// Mints an HS256 token (the `roomcast token` command and tests). rooms empty: no `rooms` claim.
// Returns the token, or "" when libjwt refused.
struct MintOptions {
  std::string secret, kid, sub, name, audience, issuer;
  std::vector<std::string> rooms;
  int64_t now_s = 0;
  int64_t ttl_s = 3600;
};
std::string mint_hs256(const MintOptions& o);

// The `roomcast token ...` command: prints a token. Returns the process exit code.
int token_command(int argc, char** argv);

}  // namespace roomcast::server
