// Unit tests of the JWT verifier (server/auth.h): a table of tokens -> verdicts, built here byte by byte
// (HMAC by OpenSSL, RS256/ES256 signed by libjwt with keys generated in the test), and the expiry heap.
// Rule: the algorithm is the key's; every refusal reason of section 8 has a row.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <jwt.h>
#include <rapidjson/document.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <initializer_list>
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

// part (base64url, 2 or 3 characters in its last group) with the lowest unused bit of its last character set:
// another text for the same bytes.
std::string unused_bit_set(std::string part) {
  static const std::string kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  REQUIRE(part.size() % 4 >= 2, "no unused bits");
  part.back() = kAlphabet[kAlphabet.find(part.back()) ^ 1];
  return part;
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

// An RS256 token signed here (OpenSSL) over parts libjwt would not write (a member twice).
std::string rs256(const std::string& header, const std::string& payload, const KeyPair& k) {
  std::string input = b64url(header) + "." + b64url(payload);
  BIO* b = BIO_new_mem_buf(k.private_pem.data(), static_cast<int>(k.private_pem.size()));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  REQUIRE(pkey, "private key");
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  std::string sig;
  bool ok = EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, pkey) == 1 &&
            EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  sig.resize(len);
  ok = ok && EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(&sig[0]), &len, reinterpret_cast<const unsigned char*>(input.data()),
                            input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pkey);
  REQUIRE(ok, "RS256 signing");
  sig.resize(len);
  return input + "." + b64url(sig);
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
      // A hostile client's attempts (red team of the OpenSSL + rapidjson decoder).
      {"alg with \\u escapes", hs(R"({"alg":"HS\u0032\u0035\u0036"})", claims(ai), kSecret), AuthRefusal::None},
      {"alg with a \\u0000 after it", hs(R"({"alg":"HS256\u0000"})", claims(ai), kSecret), AuthRefusal::Malformed},
      {"alg with a space after it", hs(R"({"alg":"HS256 "})", claims(ai), kSecret), AuthRefusal::Malformed},
      {"alg None", hs(R"({"alg":"None"})", claims(ai), kSecret), AuthRefusal::Malformed},
      {"alg none, escaped", hs(R"({"alg":"\u006eone"})", claims(ai), kSecret), AuthRefusal::AlgMismatch},
      {"alg none, its name escaped", hs(R"({"\u0061lg":"none"})", claims(ai), kSecret), AuthRefusal::AlgMismatch},
      {"alg PS256 (libjwt 1.x has none)", hs(R"({"alg":"PS256"})", claims(ai), kSecret), AuthRefusal::Malformed},
      {"a member alg\\u0000 beside alg", hs(R"({"alg":"HS256","alg\u0000":"none"})", claims(ai), kSecret), AuthRefusal::None},
      {"kid with a NUL", hs(R"({"alg":"HS256","kid":"\u0000"})", claims(ai), kSecret), AuthRefusal::NoKey},
      {"kid null", hs(R"({"alg":"HS256","kid":null})", claims(ai), kSecret), AuthRefusal::Malformed},
      // (a kid "" names the keys configured without one, as the libjwt-based code did)
      {"kid empty", hs(R"({"alg":"HS256","kid":""})", claims(ai), kSecret), AuthRefusal::None},
      {"header and claims swapped", [&] {
         std::string t = hs(kHs, claims(ai), kSecret);
         size_t a = t.find('.'), b = t.rfind('.');
         return t.substr(a + 1, b - a - 1) + "." + t.substr(0, a) + t.substr(b);
       }(), AuthRefusal::Malformed},
      {"signature of another token", [&] {
         std::string t = hs(kHs, claims(ai), kSecret), u = hs(kHs, claims(ai, kNow + 601), kSecret);
         return t.substr(0, t.rfind('.')) + u.substr(u.rfind('.'));
       }(), AuthRefusal::BadSignature},
      // The MAC is compared as text: another encoding of the same 32 bytes (unused bits set) is refused.
      {"signature with unused bits set", [&] {
         std::string t = hs(kHs, claims(ai), kSecret);  // 43 characters: the last one carries 2 unused bits
         size_t b = t.rfind('.');
         return t.substr(0, b + 1) + unused_bit_set(t.substr(b + 1));
       }(), AuthRefusal::BadSignature},
      {"signature and one character", hs(kHs, claims(ai), kSecret) + "A", AuthRefusal::BadSignature},
      {"signature and two characters (impossible length)", hs(kHs, claims(ai), kSecret) + "AA", AuthRefusal::Malformed},
      {"signature padded", hs(kHs, claims(ai), kSecret) + "=", AuthRefusal::Malformed},
      {"signature in the standard alphabet", [&] {
         std::string t;
         for (int e = 0; t.empty() || t.substr(t.rfind('.')).find_first_of("-_") == std::string::npos; e++)
           t = hs(kHs, claims(ai, kNow + 600 + e), kSecret);
         size_t b = t.rfind('.');
         std::replace(t.begin() + static_cast<long>(b), t.end(), '-', '+');
         std::replace(t.begin() + static_cast<long>(b), t.end(), '_', '/');
         return t;
       }(), AuthRefusal::Malformed},
      {"a space before", " " + hs(kHs, claims(ai), kSecret), AuthRefusal::Malformed},
      {"a newline after", hs(kHs, claims(ai), kSecret) + "\n", AuthRefusal::Malformed},
      {"a NUL after", hs(kHs, claims(ai), kSecret) + std::string(1, '\0'), AuthRefusal::Malformed},
      // Signed parts encoded with unused bits set decode to the signed JSON: the MAC covers that text.
      {"claims part with unused bits set, signed", [&] {
         std::string c = claims(ai);
         while (b64url(c).size() % 4 < 2) c += " ";
         return hs_parts(b64url(kHs), unused_bit_set(b64url(c)), kSecret);
       }(), AuthRefusal::None},
      {"exp 1e400 (out of range)", hs(kHs, claims(ai, 0).replace(claims(ai, 0).find("\"exp\":0"), 7, "\"exp\":1e400"), kSecret), AuthRefusal::BadClaims},
      {"exp an integer past 2^64", hs(kHs, claims(ai, 0).replace(claims(ai, 0).find("\"exp\":0"), 7, "\"exp\":18446744073709551616"), kSecret), AuthRefusal::None},
      {"exp -0", hs(kHs, claims(ai, 0).replace(claims(ai, 0).find("\"exp\":0"), 7, "\"exp\":-0"), kSecret), AuthRefusal::Expired},
      {"exp -1e308", hs(kHs, claims(ai, 0).replace(claims(ai, 0).find("\"exp\":0"), 7, "\"exp\":-1e308"), kSecret), AuthRefusal::Expired},
      {"exp 1e-400", hs(kHs, claims(ai, 0).replace(claims(ai, 0).find("\"exp\":0"), 7, "\"exp\":1e-400"), kSecret), AuthRefusal::Expired},
      {"exp null", hs(kHs, claims(ai, 0).replace(claims(ai, 0).find("\"exp\":0"), 7, "\"exp\":null"), kSecret), AuthRefusal::BadClaims},
      {"exp NaN", hs(kHs, claims(ai, 0).replace(claims(ai, 0).find("\"exp\":0"), 7, "\"exp\":NaN"), kSecret), AuthRefusal::BadClaims},
      {"exp Infinity", hs(kHs, claims(ai, 0).replace(claims(ai, 0).find("\"exp\":0"), 7, "\"exp\":Infinity"), kSecret), AuthRefusal::BadClaims},
      {"nbf -1e308", hs(kHs, claims(ai + ",\"nbf\":-1e308"), kSecret), AuthRefusal::None},
      {"nbf 1e308", hs(kHs, claims(ai + ",\"nbf\":1e308"), kSecret), AuthRefusal::NotYetValid},
      {"iat an integer past 2^64", hs(kHs, claims(ai + ",\"iat\":99999999999999999999999"), kSecret), AuthRefusal::NotYetValid},
      {"sub with \\u escapes", hs(kHs, claims(ai).replace(1, 13, R"("sub":"\u0061lice")"), kSecret), AuthRefusal::None},
      {"sub with a \\u0000", hs(kHs, claims(ai).replace(1, 13, R"("sub":"al\u0000ice")"), kSecret), AuthRefusal::BadClaims},
      {"sub with a raw 0xff", hs(kHs, claims(ai).replace(1, 13, "\"sub\":\"al\xff" "ice\""), kSecret), AuthRefusal::BadClaims},
      {"a member sub\\u0000 beside sub", hs(kHs, claims(ai + R"(,"sub\u0000":"bob")"), kSecret), AuthRefusal::None},
      {"name a lone low surrogate", hs(kHs, claims(ai + R"(,"name":"\udc00")"), kSecret), AuthRefusal::BadClaims},
      {"name a lone high surrogate", hs(kHs, claims(ai + R"(,"name":"\ud800x")"), kSecret), AuthRefusal::BadClaims},
      {"name a surrogate pair", hs(kHs, claims(ai + R"(,"name":"\ud800\udc00")"), kSecret), AuthRefusal::None},
      {"name a raw 0xff", hs(kHs, claims(ai + ",\"name\":\"a\xff" "b\""), kSecret), AuthRefusal::BadClaims},
      {"name overlong UTF-8", hs(kHs, claims(ai + ",\"name\":\"\xc0\xaf\""), kSecret), AuthRefusal::BadClaims},
      {"name a raw UTF-8 surrogate", hs(kHs, claims(ai + ",\"name\":\"\xed\xa0\x80\""), kSecret), AuthRefusal::BadClaims},
      {"claims nested 1000 deep", hs(kHs, claims(ai + ",\"x\":" + std::string(1000, '[') + std::string(1000, ']')), kSecret), AuthRefusal::None},
      {"claims with a comment", hs(kHs, claims(ai) + "/**/", kSecret), AuthRefusal::BadClaims},
      {"claims with a trailing comma", hs(kHs, claims(ai + ","), kSecret), AuthRefusal::BadClaims},
      {"claims in single quotes", hs(kHs, "{'sub':'alice'}", kSecret), AuthRefusal::BadClaims},
      // RFC 8259 section 8.1 lets a parser ignore a byte order mark (rapidjson does; signed, so harmless).
      {"claims after a byte order mark", hs(kHs, "\xef\xbb\xbf" + claims(ai), kSecret), AuthRefusal::None},
      // A member twice (RFC 7515 and 7519 section 4: refused, or the last one read; rapidjson reads the first).
      {"alg twice, none first", hs(R"({"alg":"none","alg":"HS256"})", claims(ai), kSecret), AuthRefusal::Malformed},
      {"alg twice, none last", hs(R"({"alg":"HS256","alg":"none"})", claims(ai), kSecret), AuthRefusal::Malformed},
      {"alg twice, once escaped", hs(R"({"alg":"HS256","\u0061lg":"none"})", claims(ai), kSecret), AuthRefusal::Malformed},
      {"kid twice", hs(R"({"alg":"HS256","kid":"k9","kid":"k9"})", claims(ai), kSecret), AuthRefusal::Malformed},
      {"sub twice", hs(kHs, claims(ai + R"(,"sub":"bob")"), kSecret), AuthRefusal::BadClaims},
      {"sub twice, once escaped", hs(kHs, claims(ai + R"(,"s\u0075b":"bob")"), kSecret), AuthRefusal::BadClaims},
      {"exp twice, the last passed", hs(kHs, claims(ai + ",\"exp\":" + std::to_string(kNow - 3600)), kSecret), AuthRefusal::BadClaims},
      {"exp twice, the first passed", hs(kHs, claims(ai + ",\"exp\":" + std::to_string(kNow + 600), kNow - 3600), kSecret), AuthRefusal::BadClaims},
      {"nbf twice", hs(kHs, claims(ai + ",\"nbf\":0,\"nbf\":" + std::to_string(kNow + 3600)), kSecret), AuthRefusal::BadClaims},
      {"aud twice", hs(kHs, claims(ai + R"(,"aud":"other")"), kSecret), AuthRefusal::BadClaims},
      {"iss twice", hs(kHs, claims(ai + R"(,"iss":"https://evil.example")"), kSecret), AuthRefusal::BadClaims},
      {"rooms twice", hs(kHs, claims(ai + R"(,"rooms":["a"],"rooms":["b"])"), kSecret), AuthRefusal::BadClaims},
      {"name twice", hs(kHs, claims(ai + R"(,"name":"A","name":"B")"), kSecret), AuthRefusal::BadClaims},
      {"an unread member twice", hs(kHs, claims(ai + R"(,"x":1,"x":2)"), kSecret), AuthRefusal::BadClaims},
      {"a nested member twice (not a claim name)", hs(kHs, claims(ai + R"(,"x":{"y":1,"y":2})"), kSecret), AuthRefusal::None},
      {"rooms of 257 patterns", [&] {
         std::string r;
         for (int i = 0; i < 257; i++) r += (i ? ",\"r" : "\"r") + std::to_string(i) + "\"";
         return hs(kHs, claims(ai + ",\"rooms\":[" + r + "]"), kSecret);
       }(), AuthRefusal::BadClaims},
  };
  run(v, rows);
}

// ---- The differential/property test: seeded random headers and claims, signed by hs(), then mutated. ----
// Oracle, for every token verify() accepts: it is byte for byte what hs() makes of its own two decoded parts
// with a configured secret (the kid's, when the header names one), and the grant is what the claims say
// read the way RFC 7519 section 4 allows (duplicate members: refused, or the last one wins).

// base64url decoded by the test itself, leniently (unused trailing bits ignored): false on a character
// outside A-Z a-z 0-9 - _ or a length no bytes encode to.
bool unb64url(const std::string& in, std::string* out) {
  static const std::string kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  if (in.size() % 4 == 1) return false;
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    size_t v = kAlphabet.find(c);
    if (c == '\0' || v == std::string::npos) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return true;
}

// The last member of obj called name (RFC 7519 section 4: "the lexically last duplicate member name").
const rapidjson::Value* last_member(const rapidjson::Value& obj, const std::string& name) {
  const rapidjson::Value* found = nullptr;
  for (const auto& m : obj.GetObject())
    if (std::string(m.name.GetString(), m.name.GetStringLength()) == name) found = &m.value;
  return found;
}

std::string str_of(const rapidjson::Value* v) { return v && v->IsString() ? std::string(v->GetString(), v->GetStringLength()) : ""; }

struct FuzzKey {
  std::string kid, secret;  // kid "": a key configured without one
};
struct FuzzConfig {
  std::vector<FuzzKey> keys;
  std::string audience, issuer;
};

// Why an accepted token breaks the oracle, or "" when it does not.
std::string oracle(const FuzzConfig& cfg, const std::string& token, const AuthGrant& g) {
  size_t a = token.find('.'), b = a == std::string::npos ? a : token.find('.', a + 1);
  if (b == std::string::npos || token.find('.', b + 1) != std::string::npos) return "not three parts";
  std::string header, payload;
  if (!unb64url(token.substr(0, a), &header) || !unb64url(token.substr(a + 1, b - a - 1), &payload)) return "a part is not base64url";
  rapidjson::Document h, c;
  h.Parse(header.data(), header.size());
  c.Parse(payload.data(), payload.size());
  if (h.HasParseError() || !h.IsObject() || c.HasParseError() || !c.IsObject()) return "a part is not a JSON object";
  const rapidjson::Value* alg = last_member(h, "alg");
  if (!alg || !alg->IsString() || str_of(alg) != "HS256") return "alg is not HS256";
  const rapidjson::Value* kid = last_member(h, "kid");
  if (kid && !kid->IsString()) return "kid is not a string";
  bool signed_ok = false;
  for (const FuzzKey& k : cfg.keys)
    if ((!kid || str_of(kid) == k.kid) && hs(header, payload, k.secret) == token) signed_ok = true;
  if (!signed_ok) return "not what hs() makes of its parts with the (kid's) secret";
  const rapidjson::Value* sub = last_member(c, "sub");
  if (!sub || !sub->IsString() || str_of(sub) != g.user.id) return "the grant's user is not the last sub";
  const rapidjson::Value* name = last_member(c, "name");
  if (g.user.name != (name ? str_of(name) : g.user.id)) return "the grant's name is not the last name";
  const double now = static_cast<double>(kNow), leeway = 60;
  const rapidjson::Value* exp = last_member(c, "exp");
  if (exp && (!exp->IsNumber() || now > exp->GetDouble() + leeway)) return "expired by the last exp";
  if (exp && g.exp != static_cast<int64_t>(std::min(exp->GetDouble(), 253402300799.0))) return "the grant's exp is not the last exp";
  for (const char* n : {"nbf", "iat"}) {
    const rapidjson::Value* v = last_member(c, n);
    if (v && (!v->IsNumber() || now + leeway < v->GetDouble())) return std::string("not yet valid by the last ") + n;
  }
  if (!cfg.issuer.empty() && str_of(last_member(c, "iss")) != cfg.issuer) return "not the last iss";
  if (!cfg.audience.empty()) {
    const rapidjson::Value* aud = last_member(c, "aud");
    bool found = aud && aud->IsString() && str_of(aud) == cfg.audience;
    if (aud && aud->IsArray())
      for (const auto& v : aud->GetArray()) found = found || (v.IsString() && str_of(&v) == cfg.audience);
    if (!found) return "not the last aud";
  }
  const rapidjson::Value* rooms = last_member(c, "rooms");
  if (g.rooms_limited != (rooms != nullptr)) return "rooms limits differ from the last rooms";
  if (rooms) {
    if (!rooms->IsArray() || rooms->Size() != g.rooms.size()) return "rooms differ from the last rooms";
    for (size_t i = 0; i < g.rooms.size(); i++)
      if (str_of(&(*rooms)[static_cast<rapidjson::SizeType>(i)]) != g.rooms[i]) return "rooms differ from the last rooms";
  }
  return "";
}

// A member of a random JSON object: its name, the values it may take (the first a good one), and how often
// (percent) it is left out.
struct PoolMember {
  std::string name;
  std::vector<std::string> values;
  size_t absent_percent;
};

// A JSON object of members drawn from pool, in random order, some twice when duplicates.
std::string random_object(Rng& rng, const std::vector<PoolMember>& pool, bool duplicates, size_t good_percent) {
  std::vector<std::string> members;
  for (const auto& [name, values, absent_percent] : pool) {
    if (!duplicates && name.find('\\') != std::string::npos) continue;  // an escaped name repeats another
    if (rng.below(100) < absent_percent) continue;
    int copies = duplicates && rng.below(100) < 15 ? 2 : 1;
    for (int i = 0; i < copies; i++)
      members.push_back("\"" + name + "\":" + values[rng.below(100) < good_percent ? 0 : rng.below(values.size())]);
  }
  for (size_t i = members.size(); i > 1; i--) std::swap(members[i - 1], members[rng.below(i)]);
  std::string out = rng.below(50) == 0 ? " {" : "{";
  for (size_t i = 0; i < members.size(); i++) out += (i ? "," : "") + members[i];
  return out + (rng.below(50) == 0 ? "} " : "}");
}

// One random edit of a token, as a hostile client would make it.
std::string mutate(Rng& rng, std::string t, const std::vector<std::string>& others) {
  static const std::string kBytes = std::string("AQgw-_+/=. \n\t\"{}") + '\0' + "\x80\xff";
  static const std::string kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  auto parts = [](const std::string& s) {
    std::vector<std::string> p(1);
    for (char c : s) {
      if (c == '.') p.emplace_back();
      else p.back().push_back(c);
    }
    return p;
  };
  auto join = [](const std::vector<std::string>& p) {
    std::string s;
    for (size_t i = 0; i < p.size(); i++) s += (i ? "." : "") + p[i];
    return s;
  };
  size_t pos = t.empty() ? 0 : rng.below(t.size());
  switch (rng.below(12)) {
    case 0: if (!t.empty()) t[pos] = static_cast<char>(t[pos] ^ (1 << rng.below(8))); break;  // a bit flipped
    case 1: t.insert(rng.below(t.size() + 1), 1, kBytes[rng.below(kBytes.size())]); break;  // a byte inserted
    case 2: if (!t.empty()) t.erase(pos, 1); break;                                           // a byte deleted
    case 3: {                                                                                  // a dot moved
      size_t dot = t.find('.', pos);
      if (dot == std::string::npos) dot = t.find('.');
      if (dot != std::string::npos) t.erase(dot, 1);
      t.insert(rng.below(t.size() + 1), 1, '.');
      break;
    }
    case 4: {                                                                                  // two parts swapped
      std::vector<std::string> p = parts(t);
      std::swap(p[rng.below(p.size())], p[rng.below(p.size())]);
      t = join(p);
      break;
    }
    case 5: {                                                                                  // padding
      std::vector<std::string> p = parts(t);
      p[rng.below(p.size())] += rng.below(2) ? "=" : "==";
      t = join(p);
      break;
    }
    case 6: {                                                                                  // the standard alphabet
      std::vector<std::string> p = parts(t);
      std::string& q = p[rng.below(p.size())];
      for (char& ch : q) ch = ch == '-' ? '+' : ch == '_' ? '/' : ch;
      t = join(p);
      break;
    }
    case 7: t.resize(pos); break;                                                              // cut
    case 8: {                                                                                  // a part repeated
      std::vector<std::string> p = parts(t);
      size_t i = rng.below(p.size());
      p.insert(p.begin() + static_cast<long>(i), p[i]);
      t = join(p);
      break;
    }
    case 9: {                                                                                  // unused trailing bits set
      std::vector<std::string> p = parts(t);
      std::string& q = p[rng.below(p.size())];
      size_t v = q.empty() ? std::string::npos : kAlphabet.find(q.back());
      if (v != std::string::npos && q.size() % 4 >= 2) q.back() = kAlphabet[v ^ (1 + rng.below(q.size() % 4 == 2 ? 15 : 3))];
      t = join(p);
      break;
    }
    case 10: if (!t.empty()) t[pos] = kAlphabet[rng.below(kAlphabet.size())]; break;          // a character replaced
    case 11: {                                                                                 // a part from another token
      std::vector<std::string> p = parts(t), o = parts(others[rng.below(others.size())]);
      size_t i = rng.below(std::min(p.size(), o.size()));
      p[i] = o[i];
      t = join(p);
      break;
    }
  }
  return t;
}

void fuzz_config(Rng& rng, const FuzzConfig& cfg, int rounds, bool duplicates, int* accepted) {
  Verifier v;
  AuthSettings s;
  for (const FuzzKey& k : cfg.keys) s.secrets.push_back(k.kid.empty() ? k.secret : k.kid + "=" + k.secret);
  s.audience = cfg.audience;
  s.issuer = cfg.issuer;
  REQUIRE(v.configure(s).empty(), "configure");
  const std::string n = std::to_string(kNow);
  const std::string kid = cfg.keys[0].kid;  // the first key's kid, or none: the good kid
  const std::vector<PoolMember> header_pool = {
      {"alg", {"\"HS256\"", "\"none\"", "\"RS256\"", "\"HS384\"", "\"hs256\"", "\"HS\\u0032\\u0035\\u0036\"",
               "\"HS256\\u0000\"", "256", "null"}, 5},
      {"typ", {"\"JWT\"", "1"}, 30},
      {"kid", {"\"" + kid + "\"", "\"k1\"", "\"k2\"", "\"k\\u0031\"", "\"\"", "\"k9\"", "7"}, kid.empty() ? 70u : 10u},
      {"\\u0061lg", {"\"none\"", "\"HS256\""}, 50},
      {"x", {"\"\\udc00\"", "[[[]]]", "{\"alg\":\"none\"}"}, 50},
  };
  const std::vector<PoolMember> claims_pool = {
      {"sub", {"\"alice\"", "\"bob\"", "\"\\u0062ob\"", "\"a b\"", "\"\"", "5", "\"al\\u0000ice\""}, 5},
      {"exp", {std::to_string(kNow + 600), std::to_string(kNow - 61), std::to_string(kNow - 59), "1e300", "-1", "\"x\"", "null",
               "99999999999999999999"}, 20},
      {"nbf", {std::to_string(kNow - 1000), std::to_string(kNow + 120), std::to_string(kNow + 30)}, 50},
      {"iat", {n, std::to_string(kNow + 120)}, 30},
      {"name", {"\"Alice\"", "\"Bob B.\"", "\"a\\u0001b\"", "\"\\ud800\\udc00\"", "\"\\udc00\""}, 40},
      {"rooms", {"[\"lobby\"]", "[\"support-*\",\"a\"]", "[\"a*b\"]", "\"lobby\"", "[]"}, 50},
      {"aud", {"\"chat\"", "[\"x\",\"chat\"]", "\"other\""}, 10},
      {"iss", {"\"https://issuer.example\"", "\"https://evil.example\""}, 10},
      {"s\\u0075b", {"\"mallory\""}, 50},
  };
  const std::vector<std::string> signing = {kSecret, kOtherSecret, "a-third-secret-never-configured"};
  std::vector<std::string> others = {hs(kHs, claims(), kSecret)};
  for (int round = 0; round < rounds; round++) {
    size_t good = round % 2 ? 90 : 50;  // the share of members with their good value
    std::string header = random_object(rng, header_pool, duplicates, good), payload = random_object(rng, claims_pool, duplicates, good);
    std::string token = hs(header, payload, signing[rng.below(100) < good ? 0 : rng.below(signing.size())]);
    others[rng.below(others.size())] = token;
    if (others.size() < 8) others.push_back(token);
    for (int m = 0; m < 6; m++) {
      std::string t = token;
      for (size_t edits = m == 0 ? 0 : 1 + rng.below(3); edits > 0; edits--) t = mutate(rng, t, others);
      AuthGrant g;
      AuthRefusal r = v.verify(t, kNow, &g);
      if (r != AuthRefusal::None) continue;
      ++*accepted;
      std::string why = oracle(cfg, t, g);
      if (!why.empty()) {
        std::string hex;
        for (unsigned char ch : t) {
          char buf[3];
          snprintf(buf, sizeof(buf), "%02x", ch);
          hex += buf;
        }
        REQUIRE(false, "accepted, but %s: %s (hex %s)", why.c_str(), t.c_str(), hex.c_str());
      }
    }
  }
}

void test_hs256_fuzz(void**) {
  Rng rng(0x6a777472656475ull);
  int accepted = 0;
  fuzz_config(rng, {{{"", kSecret}}, "", ""}, 3000, false, &accepted);
  fuzz_config(rng, {{{"k1", kSecret}, {"k2", kOtherSecret}}, "", ""}, 3000, false, &accepted);
  fuzz_config(rng, {{{"", kSecret}, {"k2", kOtherSecret}}, "chat", "https://issuer.example"}, 3000, false, &accepted);
  // Members twice, or once plain and once escaped ("\u0061lg"): refused, or read as their last.
  fuzz_config(rng, {{{"k1", kSecret}}, "chat", "https://issuer.example"}, 3000, true, &accepted);
  // Tokens verify() accepts must be a fair share, or the oracle proves nothing.
  EXPECT(accepted > 2000, "only %d tokens accepted", accepted);
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
  KeyPair rsa2 = make_key("RSA", nullptr, "rsa2");
  KeyPair ec2 = make_key("EC", "P-256", "ec2");
  // An ES256 token whose raw r || s signature is changed by f (decoded, changed, encoded again).
  auto es_sig = [&](const std::function<std::string(std::string)>& f) {
    std::string t = signed_by(JWT_ALG_ES256, ec, "", kNow + 600);
    size_t dot = t.rfind('.');
    std::string b64 = t.substr(dot + 1);
    std::replace(b64.begin(), b64.end(), '-', '+');
    std::replace(b64.begin(), b64.end(), '_', '/');
    while (b64.size() % 4) b64 += '=';
    std::string raw(b64.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(&raw[0]), reinterpret_cast<const unsigned char*>(b64.data()),
                            static_cast<int>(b64.size()));
    REQUIRE(n >= 64, "ES256 signature");
    raw.resize(64);
    return t.substr(0, dot + 1) + b64url(f(raw));
  };
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
      // The header's own algorithm, but an HMAC under the PEM text: libjwt must check RS256/ES256 itself.
      {"RS256 header, HMAC under the RSA PEM", hs(R"({"alg":"RS256","kid":"r1"})", claims(), rsa.public_pem), AuthRefusal::BadSignature},
      {"ES256 header, HMAC under the EC PEM", hs(R"({"alg":"ES256"})", claims(), ec.public_pem), AuthRefusal::BadSignature},
      {"RS256, signature cut", [&] { std::string t = signed_by(JWT_ALG_RS256, rsa, "r1", kNow + 600); return t.substr(0, t.size() - 4); }(),
       AuthRefusal::BadSignature},
      {"ES256, signature kept as it was (decoded and encoded again)", es_sig([](std::string r) { return r; }), AuthRefusal::None},
      {"ES256, r and s swapped", es_sig([](std::string r) { return r.substr(32) + r.substr(0, 32); }), AuthRefusal::BadSignature},
      {"ES256, signature a byte short", es_sig([](std::string r) { return r.substr(1); }), AuthRefusal::BadSignature},
      {"ES256, signature a byte long", es_sig([](std::string r) { return r + '\0'; }), AuthRefusal::BadSignature},
      {"ES256, s zero", es_sig([](std::string r) { return r.substr(0, 32) + std::string(32, '\0'); }), AuthRefusal::BadSignature},
      {"ES256, last bit of s flipped", es_sig([](std::string r) { r.back() = static_cast<char>(r.back() ^ 1); return r; }), AuthRefusal::BadSignature},
      {"ES256 by another EC key", signed_by(JWT_ALG_ES256, ec2, "", kNow + 600), AuthRefusal::BadSignature},
      {"RS256 by another RSA key", signed_by(JWT_ALG_RS256, rsa2, "r1", kNow + 600), AuthRefusal::BadSignature},
      {"ES256, payload changed", [&] {
         std::string t = signed_by(JWT_ALG_ES256, ec, "", kNow + 600);
         size_t a = t.find('.'), b = t.rfind('.');
         return t.substr(0, a + 1) + b64url(claims(R"("name":"Mallory")")) + t.substr(b);
       }(), AuthRefusal::BadSignature},
      {"RS256 signed here", rs256(R"({"alg":"RS256","kid":"r1"})", claims(), rsa), AuthRefusal::None},
      {"RS256, sub twice", rs256(R"({"alg":"RS256","kid":"r1"})", claims(R"("sub":"bob")"), rsa), AuthRefusal::BadClaims},
      {"RS256, exp twice", rs256(R"({"alg":"RS256","kid":"r1"})", claims("\"exp\":" + std::to_string(kNow - 3600)), rsa), AuthRefusal::BadClaims},
      {"RS256 then HS256 in one header, HMAC under the RSA PEM", hs(R"({"alg":"RS256","alg":"HS256"})", claims(), rsa.public_pem),
       AuthRefusal::Malformed},
      {"RS256, no signature", [&] { std::string t = signed_by(JWT_ALG_RS256, rsa, "r1", kNow + 600); return t.substr(0, t.rfind('.') + 1); }(),
       AuthRefusal::BadSignature},
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
      TEST(test_hs256_table), TEST(test_hs256_fuzz), TEST(test_grant), TEST(test_rotation_by_kid),
      TEST(test_public_keys), TEST(test_off_and_helpers), TEST(test_expiry_heap),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
