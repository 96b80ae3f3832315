// Unit tests of the JWT verifier (server/auth.h): a table of tokens -> verdicts, built here byte by byte
// (HMAC by OpenSSL, RS256/ES256 signed by libjwt with keys generated in the test), and the expiry heap.
// Rule: the algorithm is the key's; every refusal reason of section 8 has a row.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "server/auth.h"
#include "server/expiry.h"

// cmocka last: its fail() macro would clash with names in the headers above.
#include "unit_check.h"

using namespace roomcast::server;

namespace {

const int64_t kNow = 1800000000;  // a fixed "now" for every row
const std::string kSecret = "0123456789abcdef-secret";
const std::string kOtherSecret = "another-secret-of-enough-bytes";

std::string b64url(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(&out[0]), reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  std::replace(out.begin(), out.end(), '+', '-');
  std::replace(out.begin(), out.end(), '/', '_');
  return out;
}

// header.payload signed with HMAC-SHA256 under key (any bytes: a secret, or a PEM text for the attack).
std::string hs(const std::string& header, const std::string& payload, const std::string& key) {
  std::string input = b64url(header) + "." + b64url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(input.data()),
       input.size(), mac, &len);
  return input + "." + b64url(std::string(reinterpret_cast<char*>(mac), len));
}

// Encoded parts signed as they are (to sign what a strict decoder must refuse).
std::string hs_parts(const std::string& header_part, const std::string& claims_part, const std::string& key) {
  std::string input = header_part + "." + claims_part;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(input.data()),
       input.size(), mac, &len);
  return input + "." + b64url(std::string(reinterpret_cast<char*>(mac), len));
}

std::string unsigned_token(const std::string& header, const std::string& payload) {
  return b64url(header) + "." + b64url(payload) + ".";
}

std::string claims(const std::string& extra = "", int64_t exp = kNow + 600) {
  std::string c = "{\"sub\":\"alice\",\"exp\":" + std::to_string(exp);
  if (!extra.empty()) c += "," + extra;
  return c + "}";
}

const std::string kHs = R"({"alg":"HS256","typ":"JWT"})";

struct KeyPair {
  std::string private_pem, public_pem, public_path;
};

KeyPair make_key(const char* type, const char* param, const char* name) {
  EVP_PKEY* pkey = strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048))
                                            : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", param);
  REQUIRE(pkey, "key generation failed");
  KeyPair k;
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  char* data;
  long n = BIO_get_mem_data(b, &data);
  k.private_pem.assign(data, static_cast<size_t>(n));
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(b, pkey);
  n = BIO_get_mem_data(b, &data);
  k.public_pem.assign(data, static_cast<size_t>(n));
  BIO_free(b);
  EVP_PKEY_free(pkey);
  char path[] = "/tmp/roomcast-test-auth-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0, "mkstemp");
  REQUIRE(write(fd, k.public_pem.data(), k.public_pem.size()) == static_cast<ssize_t>(k.public_pem.size()), "write");
  close(fd);
  k.public_path = path;
  (void)name;
  return k;
}

// A token signed by libjwt with a private key (RS256 or ES256).
std::string signed_by(jwt_alg_t alg, const KeyPair& k, const std::string& kid, int64_t exp) {
  jwt_t* j = nullptr;
  jwt_new(&j);
  jwt_set_alg(j, alg, reinterpret_cast<const unsigned char*>(k.private_pem.data()), static_cast<int>(k.private_pem.size()));
  if (!kid.empty()) jwt_add_header(j, "kid", kid.c_str());
  jwt_add_grant(j, "sub", "alice");
  jwt_add_grant_int(j, "exp", static_cast<long>(exp));
  char* s = jwt_encode_str(j);
  std::string out = s ? s : "";
  free(s);
  jwt_free(j);
  REQUIRE(!out.empty(), "libjwt could not sign");
  return out;
}

struct Row {
  const char* name;
  std::string token;
  AuthRefusal want;
};

void run(const Verifier& v, const std::vector<Row>& rows) {
  for (const Row& r : rows) {
    AuthGrant g;
    AuthRefusal got = v.verify(r.token, kNow, &g);
    EXPECT(got == r.want, "%s: got %s, want %s", r.name, auth_refusal_name(got), auth_refusal_name(r.want));
  }
}

void test_hs256_table(void**) {
  Verifier v;
  AuthSettings s;
  s.secrets = {kSecret};
  s.audience = "chat";
  s.issuer = "https://issuer.example";
  REQUIRE(v.configure(s).empty(), "configure");
  const std::string ai = R"("aud":"chat","iss":"https://issuer.example")";
  std::vector<Row> rows = {
      {"valid", hs(kHs, claims(ai), kSecret), AuthRefusal::None},
      {"valid, aud as array", hs(kHs, claims(R"("aud":["x","chat"],"iss":"https://issuer.example")"), kSecret), AuthRefusal::None},
      {"valid, no exp", hs(kHs, R"({"sub":"alice","aud":"chat","iss":"https://issuer.example"})", kSecret), AuthRefusal::None},
      {"empty", "", AuthRefusal::Missing},
      {"not a JWT", "hello", AuthRefusal::Malformed},
      {"two parts", b64url(kHs) + "." + b64url(claims(ai)), AuthRefusal::Malformed},
      {"header not JSON", b64url("{nope") + "." + b64url(claims(ai)) + ".c2ln", AuthRefusal::Malformed},
      {"unknown alg", hs(R"({"alg":"HS999"})", claims(ai), kSecret), AuthRefusal::Malformed},
      {"alg in lower case", hs(R"({"alg":"hs256"})", claims(ai), kSecret), AuthRefusal::Malformed},
      {"no alg", hs(R"({"typ":"JWT"})", claims(ai), kSecret), AuthRefusal::Malformed},
      {"over 4 KiB", hs(kHs, claims(ai + ",\"pad\":\"" + std::string(4100, 'x') + "\""), kSecret), AuthRefusal::TooLarge},
      {"other secret", hs(kHs, claims(ai), kOtherSecret), AuthRefusal::BadSignature},
      {"payload changed", [&] {
         std::string t = hs(kHs, claims(ai), kSecret);
         size_t a = t.find('.'), b = t.rfind('.');
         return t.substr(0, a + 1) + b64url(claims(ai + R"(,"name":"Mallory")")) + t.substr(b);
       }(), AuthRefusal::BadSignature},
      {"signature cut", [&] { std::string t = hs(kHs, claims(ai), kSecret); return t.substr(0, t.size() - 4); }(), AuthRefusal::BadSignature},
      {"alg none", unsigned_token(R"({"alg":"none"})", claims(ai)), AuthRefusal::AlgMismatch},
      {"alg none, signature kept", unsigned_token(R"({"alg":"none"})", claims(ai)) + "c2ln", AuthRefusal::AlgMismatch},
      {"RS256 with a secret key", hs(R"({"alg":"RS256"})", claims(ai), kSecret), AuthRefusal::AlgMismatch},
      {"HS384", hs(R"({"alg":"HS384"})", claims(ai), kSecret), AuthRefusal::AlgMismatch},
      {"expired", hs(kHs, claims(ai, kNow - 61), kSecret), AuthRefusal::Expired},
      {"expired within leeway", hs(kHs, claims(ai, kNow - 59), kSecret), AuthRefusal::None},
      {"nbf ahead", hs(kHs, claims(ai + ",\"nbf\":" + std::to_string(kNow + 120)), kSecret), AuthRefusal::NotYetValid},
      {"nbf within leeway", hs(kHs, claims(ai + ",\"nbf\":" + std::to_string(kNow + 30)), kSecret), AuthRefusal::None},
      {"iat ahead", hs(kHs, claims(ai + ",\"iat\":" + std::to_string(kNow + 120)), kSecret), AuthRefusal::NotYetValid},
      {"exp a string", hs(kHs, R"({"sub":"alice","exp":"never","aud":"chat","iss":"https://issuer.example"})", kSecret), AuthRefusal::BadClaims},
      {"wrong aud", hs(kHs, claims(R"("aud":"other","iss":"https://issuer.example")"), kSecret), AuthRefusal::Audience},
      {"no aud", hs(kHs, claims(R"("iss":"https://issuer.example")"), kSecret), AuthRefusal::Audience},
      {"wrong iss", hs(kHs, claims(R"("aud":"chat","iss":"https://evil.example")"), kSecret), AuthRefusal::Issuer},
      {"unknown kid", hs(R"({"alg":"HS256","kid":"k9"})", claims(ai), kSecret), AuthRefusal::NoKey},
      {"kid a number", hs(R"({"alg":"HS256","kid":7})", claims(ai), kSecret), AuthRefusal::Malformed},
      {"no sub", hs(kHs, R"({"exp":1800000600,"aud":"chat","iss":"https://issuer.example"})", kSecret), AuthRefusal::BadClaims},
      {"sub with a space", hs(kHs, R"({"sub":"a b","aud":"chat","iss":"https://issuer.example"})", kSecret), AuthRefusal::BadClaims},
      {"sub a number", hs(kHs, R"({"sub":5,"aud":"chat","iss":"https://issuer.example"})", kSecret), AuthRefusal::BadClaims},
      {"name with a control character", hs(kHs, claims(ai + R"(,"name":"a\u0001b")"), kSecret), AuthRefusal::BadClaims},
      {"rooms not an array", hs(kHs, claims(ai + R"(,"rooms":"lobby")"), kSecret), AuthRefusal::BadClaims},
      {"rooms with a bad pattern", hs(kHs, claims(ai + R"(,"rooms":["a*b"])"), kSecret), AuthRefusal::BadClaims},
      // The compact form, strictly (signed correctly, so only the form is wrong).
      {"a fourth part", hs(kHs, claims(ai), kSecret) + ".c2ln", AuthRefusal::Malformed},
      {"padding", hs_parts(b64url(kHs) + "=", b64url(claims(ai)), kSecret), AuthRefusal::Malformed},
      {"standard base64 alphabet", hs_parts(b64url(kHs), "+" + b64url(claims(ai)).substr(1), kSecret), AuthRefusal::Malformed},
      {"a space in a part", hs_parts(b64url(kHs), " " + b64url(claims(ai)), kSecret), AuthRefusal::Malformed},
      {"an impossible length", [&] {
         std::string part = b64url(claims(ai));
         while (part.size() % 4 != 1) part += "A";
         return hs_parts(b64url(kHs), part, kSecret);
       }(), AuthRefusal::Malformed},
      {"empty claims part", hs_parts(b64url(kHs), "", kSecret), AuthRefusal::Malformed},
      {"empty signature", b64url(kHs) + "." + b64url(claims(ai)) + ".", AuthRefusal::BadSignature},
      {"header with a NUL after it", hs(kHs + std::string(1, '\0'), claims(ai), kSecret), AuthRefusal::Malformed},
      {"header an array", hs(R"(["HS256"])", claims(ai), kSecret), AuthRefusal::Malformed},
      {"alg a number", hs(R"({"alg":256})", claims(ai), kSecret), AuthRefusal::Malformed},
      {"claims not JSON", hs(kHs, R"({"sub":"alice")", kSecret), AuthRefusal::BadClaims},
      {"claims an array", hs(kHs, R"(["alice"])", kSecret), AuthRefusal::BadClaims},
      {"claims with bytes after them", hs(kHs, claims(ai) + "x", kSecret), AuthRefusal::BadClaims},
      {"claims with a NUL after them", hs(kHs, claims(ai) + std::string(1, '\0') + "x", kSecret), AuthRefusal::BadClaims},
  };
  run(v, rows);
}

void test_grant(void**) {
  Verifier v;
  AuthSettings s;
  s.secrets = {kSecret};
  REQUIRE(v.configure(s).empty(), "configure");
  AuthGrant g;
  REQUIRE(v.verify(hs(kHs, claims(R"("name":"Alice A.","rooms":["support-*","lobby"])"), kSecret), kNow, &g) == AuthRefusal::None, "valid");
  EXPECT(g.user.id == "alice" && g.user.name == "Alice A.", "user %s/%s", g.user.id.c_str(), g.user.name.c_str());
  EXPECT(g.exp == kNow + 600, "exp %lld", (long long)g.exp);
  EXPECT(g.rooms_limited, "rooms claim");
  EXPECT(g.may_enter("support-1") && g.may_enter("support-") && g.may_enter("lobby"), "allowed rooms");
  EXPECT(!g.may_enter("lobby2") && !g.may_enter("support") && !g.may_enter("other"), "other rooms");
  REQUIRE(v.verify(hs(kHs, claims(), kSecret), kNow, &g) == AuthRefusal::None, "valid");
  EXPECT(g.user.name == "alice", "name defaults to sub: %s", g.user.name.c_str());
  EXPECT(!g.rooms_limited && g.may_enter("anything"), "no rooms claim: every room");
  REQUIRE(v.verify(hs(kHs, R"({"sub":"alice","exp":1e300})", kSecret), kNow, &g) == AuthRefusal::None, "valid");
  EXPECT(g.exp == 253402300799, "a huge exp is kept as the year 9999: %lld", (long long)g.exp);
  REQUIRE(v.verify(hs(kHs, claims(R"("rooms":["*"])"), kSecret), kNow, &g) == AuthRefusal::None, "valid");
  EXPECT(g.may_enter("x"), "a lone * allows every room");
  REQUIRE(v.verify(hs(kHs, claims(R"("rooms":[])"), kSecret), kNow, &g) == AuthRefusal::None, "valid");
  EXPECT(g.rooms_limited && !g.may_enter("x"), "an empty rooms claim allows none");
}

void test_rotation_by_kid(void**) {
  Verifier v;
  AuthSettings s;
  s.secrets = {"k1=" + kSecret, "k2=" + kOtherSecret};
  REQUIRE(v.configure(s).empty(), "configure");
  std::vector<Row> rows = {
      {"k1", hs(R"({"alg":"HS256","kid":"k1"})", claims(), kSecret), AuthRefusal::None},
      {"k2", hs(R"({"alg":"HS256","kid":"k2"})", claims(), kOtherSecret), AuthRefusal::None},
      {"k1 named, k2 signed", hs(R"({"alg":"HS256","kid":"k1"})", claims(), kOtherSecret), AuthRefusal::BadSignature},
      {"no kid: any key", hs(kHs, claims(), kOtherSecret), AuthRefusal::None},
      {"k3", hs(R"({"alg":"HS256","kid":"k3"})", claims(), kSecret), AuthRefusal::NoKey},
  };
  run(v, rows);
  Verifier bad;
  AuthSettings short_secret;
  short_secret.secrets = {"short"};
  EXPECT(!bad.configure(short_secret).empty(), "a secret under 16 bytes is refused");
  EXPECT(!bad.enabled(), "nothing configured after a refusal");
  AuthSettings dup;
  dup.secrets = {"k1=" + kSecret, "k1=" + kOtherSecret};
  EXPECT(!bad.configure(dup).empty(), "two keys with one kid are refused");
}

void test_public_keys(void**) {
  KeyPair rsa = make_key("RSA", nullptr, "rsa");
  KeyPair ec = make_key("EC", "P-256", "ec");
  Verifier v;
  AuthSettings s;
  s.public_keys = {"r1=" + rsa.public_path, ec.public_path};
  REQUIRE(v.configure(s).empty(), "configure");
  std::vector<Row> rows = {
      {"RS256 with kid", signed_by(JWT_ALG_RS256, rsa, "r1", kNow + 600), AuthRefusal::None},
      {"RS256 without kid", signed_by(JWT_ALG_RS256, rsa, "", kNow + 600), AuthRefusal::None},
      {"ES256 without kid", signed_by(JWT_ALG_ES256, ec, "", kNow + 600), AuthRefusal::None},
      {"ES256 naming the RSA kid", signed_by(JWT_ALG_ES256, ec, "r1", kNow + 600), AuthRefusal::AlgMismatch},
      {"RS256 expired", signed_by(JWT_ALG_RS256, rsa, "r1", kNow - 100), AuthRefusal::Expired},
      // The classic attack: HS256 "signed" with the public key's PEM text as the HMAC secret.
      {"HS256 with the RSA PEM as secret", hs(kHs, claims(), rsa.public_pem), AuthRefusal::AlgMismatch},
      {"HS256 with the RSA PEM, naming its kid", hs(R"({"alg":"HS256","kid":"r1"})", claims(), rsa.public_pem), AuthRefusal::AlgMismatch},
      {"HS256 with the EC PEM as secret", hs(kHs, claims(), ec.public_pem), AuthRefusal::AlgMismatch},
      {"alg none", unsigned_token(R"({"alg":"none"})", claims()), AuthRefusal::AlgMismatch},
  };
  run(v, rows);
  KeyPair other = make_key("RSA", nullptr, "other");
  run(v, {{"RS256 by another key", signed_by(JWT_ALG_RS256, other, "r1", kNow + 600), AuthRefusal::BadSignature}});

  // Reload: the file now holds another key; a bad file keeps the keys in use.
  FILE* f = fopen(rsa.public_path.c_str(), "w");
  fputs(other.public_pem.c_str(), f);
  fclose(f);
  EXPECT(v.reload().empty(), "reload");
  run(v, {{"old key after reload", signed_by(JWT_ALG_RS256, rsa, "r1", kNow + 600), AuthRefusal::BadSignature},
          {"new key after reload", signed_by(JWT_ALG_RS256, other, "r1", kNow + 600), AuthRefusal::None}});
  f = fopen(rsa.public_path.c_str(), "w");
  fputs("not a key\n", f);
  fclose(f);
  EXPECT(!v.reload().empty(), "a bad file is reported");
  run(v, {{"keys kept after a bad reload", signed_by(JWT_ALG_RS256, other, "r1", kNow + 600), AuthRefusal::None}});

  KeyPair k1 = make_key("EC", "secp384r1", "p384");
  Verifier p384;
  AuthSettings s384;
  s384.public_keys = {k1.public_path};
  EXPECT(!p384.configure(s384).empty(), "a P-384 key is refused (ES256 only)");
  for (const KeyPair* k : {&rsa, &ec, &other, &k1}) unlink(k->public_path.c_str());
}

void test_off_and_helpers(void**) {
  Verifier v;
  REQUIRE(v.configure(AuthSettings()).empty(), "configure");
  EXPECT(!v.enabled(), "no key: off");
  AuthGrant g;
  EXPECT(v.verify(hs(kHs, claims(), kSecret), kNow, &g) == AuthRefusal::NoKey, "no key verifies nothing");
  std::string kid, value;
  split_kid("k1=abc", &kid, &value);
  EXPECT(kid == "k1" && value == "abc", "KID=VALUE");
  split_kid("abc=", &kid, &value);
  EXPECT(kid.empty() && value == "abc=", "a trailing = is part of the secret");
  split_kid("/a b/key.pem", &kid, &value);
  EXPECT(kid.empty() && value == "/a b/key.pem", "a path");
  EXPECT(bearer_token("Bearer abc") == "abc", "bearer");
  EXPECT(bearer_token("bearer   abc  ") == "abc", "bearer, case and blanks");
  EXPECT(bearer_token("Basic abc").empty(), "not bearer");
  MintOptions o;
  o.secret = kSecret;
  o.sub = "bob";
  o.kid = "k1";
  o.rooms = {"a-*"};
  o.now_s = kNow;
  o.ttl_s = 60;
  std::string t = mint_hs256(o);
  Verifier k;
  AuthSettings s;
  s.secrets = {"k1=" + kSecret};
  REQUIRE(k.configure(s).empty(), "configure");
  EXPECT(k.verify(t, kNow, &g) == AuthRefusal::None, "a minted token verifies");
  EXPECT(g.user.id == "bob" && g.exp == kNow + 60 && g.may_enter("a-1") && !g.may_enter("b"), "minted claims");
}

void test_expiry_heap(void**) {
  Rng rng(42);
  ExpiryHeap heap;
  std::vector<ExpiryHook> hooks(200);
  std::vector<int64_t> model(hooks.size(), -1);  // due, or -1 when not queued
  for (int step = 0; step < 20000; step++) {
    size_t i = rng.next() % hooks.size();
    switch (rng.next() % 3) {
      case 0: {
        int64_t due = static_cast<int64_t>(rng.next() % 1000);
        heap.set(&hooks[i], due);
        model[i] = due;
        break;
      }
      case 1:
        heap.remove(&hooks[i]);
        model[i] = -1;
        break;
      case 2: {
        int64_t now = static_cast<int64_t>(rng.next() % 1000);
        while (ExpiryHook* h = heap.pop_expired(now)) {
          size_t k = static_cast<size_t>(h - hooks.data());
          REQUIRE(model[k] >= 0 && model[k] <= now, "popped hook %zu due %lld at %lld", k, (long long)model[k], (long long)now);
          for (size_t j = 0; j < model.size(); j++)
            REQUIRE(model[j] < 0 || model[j] >= model[k], "popped %zu before an earlier %zu", k, j);
          model[k] = -1;
        }
        for (size_t j = 0; j < model.size(); j++) REQUIRE(model[j] < 0 || model[j] > now, "hook %zu due but left", j);
        break;
      }
    }
    size_t queued = 0;
    for (size_t j = 0; j < model.size(); j++) {
      REQUIRE((model[j] >= 0) == hooks[j].queued(), "hook %zu queued state", j);
      queued += model[j] >= 0;
    }
    REQUIRE(queued == heap.size(), "size");
  }
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      TEST(test_hs256_table), TEST(test_grant), TEST(test_rotation_by_kid),
      TEST(test_public_keys), TEST(test_off_and_helpers), TEST(test_expiry_heap),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
