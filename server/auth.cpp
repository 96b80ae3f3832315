// Token authentication (PROTOCOL.md section 8): JWT keys, verification, claims, minting for tests.
// Rule: the header is read unverified only to pick the key; the key's type fixes the one algorithm accepted.
// Tokens are checked with OpenSSL (HMAC for HS256; the public key, parsed once, for RS256 and ES256) and
// read with rapidjson; libjwt decoded every token twice, parsed its JSON four times with jansson (25 us
// per HS256 upgrade) and parsed the PEM key on every RS256/ES256 check (0.7 ms). Minting (roomcast
// token, tests) uses libjwt.
#include "server/auth.h"

#include <errno.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>

namespace roomcast::server {

namespace {

constexpr size_t kMaxRoomPatterns = 256;

struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;

jwt_alg_t alg_of(Verifier::KeyType t) {
  switch (t) {
    case Verifier::KeyType::Hmac: return JWT_ALG_HS256;
    case Verifier::KeyType::Rsa: return JWT_ALG_RS256;
    case Verifier::KeyType::Ec: return JWT_ALG_ES256;
  }
  return JWT_ALG_INVAL;
}

// A NumericDate claim: absent (true, *present false), a number (true), anything else (false).
bool read_date(const rapidjson::Value& claims, const char* name, bool* present, double* out) {
  *present = false;
  auto it = claims.FindMember(name);
  if (it == claims.MemberEnd()) return true;
  if (!it->value.IsNumber()) return false;
  *present = true;
  *out = it->value.GetDouble();
  return true;
}

bool valid_pattern(std::string_view p) {
  if (!p.empty() && p.back() == '*') {
    p.remove_suffix(1);
    return p.empty() || protocol::valid_room_id(p);
  }
  return protocol::valid_room_id(p);
}

// True when no two members of object have one name. RFC 7515 and RFC 7519 (section 4 of each): a parser
// must refuse a name given twice or read the last; rapidjson's FindMember finds the first, so a token with
// {"exp":<past>,"exp":<future>} or {"alg":"HS256","\u0061lg":"none"} would mean one thing here and another
// to every other reader of it. Refused.
bool unique_members(const rapidjson::Value& object) {
  std::vector<std::string_view> names;
  names.reserve(object.MemberCount());
  for (const auto& m : object.GetObject()) names.emplace_back(m.name.GetString(), m.name.GetStringLength());
  std::sort(names.begin(), names.end());
  return std::adjacent_find(names.begin(), names.end()) == names.end();
}

// True for base64url without padding (RFC 7515 section 2): A-Z a-z 0-9 - _ only, and a length that
// some bytes encode to.
bool b64url_valid(std::string_view in) {
  if (in.empty() || in.size() % 4 == 1) return false;
  for (char c : in)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return false;
  return true;
}

// Decodes base64url (strictly, as b64url_valid) with OpenSSL's decoder. False when not valid.
bool b64url_decode(std::string_view in, std::string* out) {
  if (!b64url_valid(in)) return false;
  std::string b64(in);
  for (char& c : b64) c = c == '-' ? '+' : c == '_' ? '/' : c;
  size_t pad = (4 - b64.size() % 4) % 4;
  b64.append(pad, '=');
  out->resize(b64.size() / 4 * 3);
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out->data()), reinterpret_cast<const unsigned char*>(b64.data()),
                          static_cast<int>(b64.size()));
  if (n < 0 || static_cast<size_t>(n) < pad) return false;
  out->resize(static_cast<size_t>(n) - pad);
  return true;
}

// HS256: the signature (OpenSSL's HMAC over header.claims), compared in constant time.
bool hmac_matches(std::string_view token, const std::string& secret) {
  size_t dot = token.rfind('.');
  if (dot == std::string::npos) return false;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(token.data()),
            dot, mac, &mac_len))
    return false;
  unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  int n = EVP_EncodeBlock(b64, mac, static_cast<int>(mac_len));
  while (n > 0 && b64[n - 1] == '=') n--;
  for (int i = 0; i < n; i++) b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
  std::string_view sig = std::string_view(token).substr(dot + 1);
  return sig.size() == static_cast<size_t>(n) && CRYPTO_memcmp(sig.data(), b64, sig.size()) == 0;
}

// RS256 (RSASSA-PKCS1-v1_5) and ES256 (ECDSA P-256) over input, SHA-256, with k's parsed public key.
// ES256's JWS signature is r || s, 32 bytes each (RFC 7518 section 3.4); OpenSSL verifies the DER form.
// (libjwt parsed the PEM text on every token: 0.66-0.76 ms per check.)
bool pkey_matches(std::string_view input, std::string_view sig_b64, const Verifier::Key& k) {
  std::string sig;
  if (!k.verifier || !b64url_decode(sig_b64, &sig)) return false;
  if (k.type == Verifier::KeyType::Ec) {
    if (sig.size() != 64) return false;
    const auto* raw = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = ECDSA_SIG_new();
    BIGNUM* r = BN_bin2bn(raw, 32, nullptr);
    BIGNUM* s = BN_bin2bn(raw + 32, 32, nullptr);
    if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {  // set0 owns r and s only when it succeeds
      BN_free(r);
      BN_free(s);
      ECDSA_SIG_free(es);
      return false;
    }
    unsigned char* der = nullptr;
    int n = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    if (n <= 0) return false;
    sig.assign(reinterpret_cast<const char*>(der), static_cast<size_t>(n));
    OPENSSL_free(der);
  }
  // The operation was set up once (load_pem): setting it up per token fetched the algorithms from
  // OpenSSL's providers every time, 10x the verification itself.
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return EVP_PKEY_verify(k.verifier.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(), digest,
                         sizeof(digest)) == 1;
}

bool read_file(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream s;
  s << f.rdbuf();
  if (f.bad()) return false;
  *out = s.str();
  return true;
}

}  // namespace

const char* auth_refusal_name(AuthRefusal r) {
  switch (r) {
    case AuthRefusal::None: return "none";
    case AuthRefusal::Missing: return "missing";
    case AuthRefusal::Malformed: return "malformed";
    case AuthRefusal::TooLarge: return "too_large";
    case AuthRefusal::BadSignature: return "bad_signature";
    case AuthRefusal::AlgMismatch: return "alg_mismatch";
    case AuthRefusal::Expired: return "expired";
    case AuthRefusal::NotYetValid: return "not_yet_valid";
    case AuthRefusal::Audience: return "audience";
    case AuthRefusal::Issuer: return "issuer";
    case AuthRefusal::NoKey: return "no_key";
    case AuthRefusal::BadClaims: return "bad_claims";
    case AuthRefusal::kCount: break;
  }
  return "unknown";
}

bool AuthGrant::may_enter(std::string_view room_id) const {
  if (!rooms_limited) return true;
  for (const std::string& p : rooms) {
    if (!p.empty() && p.back() == '*') {
      if (room_id.substr(0, p.size() - 1) == std::string_view(p).substr(0, p.size() - 1)) return true;
    } else if (room_id == p) {
      return true;
    }
  }
  return false;
}

void split_kid(const std::string& setting, std::string* kid, std::string* value) {
  size_t eq = setting.find('=');
  if (eq != std::string::npos && eq + 1 < setting.size() && protocol::valid_room_id(std::string_view(setting).substr(0, eq))) {
    *kid = setting.substr(0, eq);
    *value = setting.substr(eq + 1);
  } else {
    kid->clear();
    *value = setting;
  }
}

std::string_view bearer_token(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  if (v.size() < 7 || strncasecmp(v.data(), "bearer ", 7) != 0) return {};
  v.remove_prefix(7);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

std::string Verifier::load_pem(Key* k) {
  std::string pem;
  if (!read_file(k->path, &pem)) return "cannot read " + k->path + ": " + strerror(errno);
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* pkey = bio ? PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  if (!pkey) return k->path + " holds no PEM public key (\"-----BEGIN PUBLIC KEY-----\")";
  std::string err;
  int id = EVP_PKEY_get_base_id(pkey);
  if (id == EVP_PKEY_RSA) {
    if (EVP_PKEY_get_bits(pkey) < 2048) err = k->path + ": an RSA key needs at least 2048 bits";
    k->type = KeyType::Rsa;
  } else if (id == EVP_PKEY_EC) {
    char group[64] = "";
    size_t len = 0;
    EVP_PKEY_get_group_name(pkey, group, sizeof(group), &len);
    if (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)
      err = k->path + ": an EC key must be on P-256 (ES256), not " + (group[0] ? group : "an unknown curve");
    k->type = KeyType::Ec;
  } else {
    err = k->path + ": only RSA (RS256) and EC P-256 (ES256) public keys are supported";
  }
  if (!err.empty()) {
    EVP_PKEY_free(pkey);
    return err;
  }
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(pkey, nullptr);  // holds its own reference to the key
  EVP_PKEY_free(pkey);
  bool ok = ctx && EVP_PKEY_verify_init(ctx) == 1 && EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
            (k->type != KeyType::Rsa || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1);
  if (!ok) {
    EVP_PKEY_CTX_free(ctx);
    return k->path + ": OpenSSL cannot verify with this key";
  }
  k->verifier.reset(ctx, EVP_PKEY_CTX_free);
  k->material = std::move(pem);
  return err;
}

std::string Verifier::configure(const AuthSettings& settings) {
  std::vector<Key> keys;
  for (const std::string& s : settings.secrets) {
    Key k;
    k.type = KeyType::Hmac;
    split_kid(s, &k.kid, &k.material);
    if (k.material.size() < 16)
      return "--jwt-secret" + (k.kid.empty() ? std::string() : " (kid " + k.kid + ")") + ": an HS256 secret needs at least 16 bytes";
    keys.push_back(std::move(k));
  }
  for (const std::string& s : settings.public_keys) {
    Key k;
    split_kid(s, &k.kid, &k.path);
    std::string err = load_pem(&k);
    if (!err.empty()) return "--jwt-public-key " + err;
    keys.push_back(std::move(k));
  }
  for (size_t i = 0; i < keys.size(); i++)
    for (size_t j = i + 1; j < keys.size(); j++)
      if (!keys[i].kid.empty() && keys[i].kid == keys[j].kid) return "two keys have the kid " + keys[i].kid;
  settings_ = settings;
  keys_ = std::move(keys);
  return "";
}

std::string Verifier::reload() {
  std::vector<Key> keys = keys_;
  for (Key& k : keys) {
    if (k.path.empty()) continue;
    std::string err = load_pem(&k);
    if (!err.empty()) return err;
  }
  keys_ = std::move(keys);
  return "";
}

AuthRefusal Verifier::verify(std::string_view token, int64_t now_s, AuthGrant* grant) const {
  if (token.empty()) return AuthRefusal::Missing;
  if (token.size() > kMaxTokenBytes) return AuthRefusal::TooLarge;
  // The JWS compact form: three base64url parts; the header and the claims are JSON objects.
  size_t dot1 = token.find('.'), dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) return AuthRefusal::Malformed;
  std::string header_json, claims_json;
  if (!b64url_decode(token.substr(0, dot1), &header_json) || !b64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1), &claims_json) ||
      (dot2 + 1 < token.size() && !b64url_valid(token.substr(dot2 + 1))))
    return AuthRefusal::Malformed;

  // 1. The header, unverified, only to choose the key.
  // (rapidjson takes a NUL byte for the end of its input: JSON text has none.)
  rapidjson::Document header;
  header.Parse(header_json.data(), header_json.size());
  if (header.HasParseError() || !header.IsObject() || header_json.find('\0') != std::string::npos || !unique_members(header))
    return AuthRefusal::Malformed;
  auto alg_member = header.FindMember("alg");
  if (alg_member == header.MemberEnd() || !alg_member->value.IsString()) return AuthRefusal::Malformed;
  std::string alg_name(alg_member->value.GetString(), alg_member->value.GetStringLength());
  jwt_alg_t alg = jwt_str_alg(alg_name.c_str());
  if (alg == JWT_ALG_INVAL || alg_name != jwt_alg_str(alg)) return AuthRefusal::Malformed;  // names are case-sensitive
  if (alg == JWT_ALG_NONE) return AuthRefusal::AlgMismatch;
  auto kid_member = header.FindMember("kid");
  if (kid_member != header.MemberEnd() && !kid_member->value.IsString()) return AuthRefusal::Malformed;
  std::vector<const Key*> candidates;
  if (kid_member != header.MemberEnd()) {
    std::string_view kid(kid_member->value.GetString(), kid_member->value.GetStringLength());
    const Key* k = nullptr;
    for (const Key& key : keys_)
      if (key.kid == kid) k = &key;
    if (!k) return AuthRefusal::NoKey;
    if (alg_of(k->type) != alg) return AuthRefusal::AlgMismatch;
    candidates.push_back(k);
  } else {
    for (const Key& key : keys_)
      if (alg_of(key.type) == alg) candidates.push_back(&key);
    if (candidates.empty()) return keys_.empty() ? AuthRefusal::NoKey : AuthRefusal::AlgMismatch;
  }

  // 2. The signature, with the key, the algorithm being the key's own: HS256 with OpenSSL's HMAC, compared
  // in constant time; RS256 and ES256 with OpenSSL's verify and the key parsed once. The claims decoded
  // above are the signed ones.
  bool verified = false;
  for (const Key* k : candidates) {
    if (k->type == KeyType::Hmac) {
      verified = hmac_matches(token, k->material);
    } else {
      verified = pkey_matches(token.substr(0, dot2), token.substr(dot2 + 1), *k);
    }
    if (verified) break;
  }
  if (!verified) return AuthRefusal::BadSignature;

  // 3. Claims.
  return check_claims(claims_json, now_s, grant);
}

AuthRefusal Verifier::check_claims(const std::string& claims_json, int64_t now_s, AuthGrant* grant) const {
  rapidjson::Document doc;
  doc.Parse(claims_json.data(), claims_json.size());
  if (doc.HasParseError() || !doc.IsObject() || claims_json.find('\0') != std::string::npos || !unique_members(doc))
    return AuthRefusal::BadClaims;
  const double now = static_cast<double>(now_s), leeway = static_cast<double>(settings_.leeway_s);
  bool has_exp, has_nbf, has_iat;
  double exp = 0, nbf = 0, iat = 0;
  if (!read_date(doc, "exp", &has_exp, &exp) || !read_date(doc, "nbf", &has_nbf, &nbf) || !read_date(doc, "iat", &has_iat, &iat))
    return AuthRefusal::BadClaims;
  if (has_exp && now > exp + leeway) return AuthRefusal::Expired;
  if (has_nbf && now + leeway < nbf) return AuthRefusal::NotYetValid;
  if (has_iat && now + leeway < iat) return AuthRefusal::NotYetValid;

  if (!settings_.issuer.empty()) {
    auto it = doc.FindMember("iss");
    if (it == doc.MemberEnd() || !it->value.IsString() ||
        std::string_view(it->value.GetString(), it->value.GetStringLength()) != settings_.issuer)
      return AuthRefusal::Issuer;
  }
  if (!settings_.audience.empty()) {
    auto it = doc.FindMember("aud");
    bool found = false;
    if (it != doc.MemberEnd()) {
      auto match = [&](const rapidjson::Value& v) {
        return v.IsString() && std::string_view(v.GetString(), v.GetStringLength()) == settings_.audience;
      };
      if (it->value.IsArray()) {
        for (const auto& v : it->value.GetArray()) found = found || match(v);
      } else {
        found = match(it->value);
      }
    }
    if (!found) return AuthRefusal::Audience;
  }

  AuthGrant g;
  auto sub = doc.FindMember("sub");
  if (sub == doc.MemberEnd() || !sub->value.IsString()) return AuthRefusal::BadClaims;
  g.user.id.assign(sub->value.GetString(), sub->value.GetStringLength());
  if (!protocol::valid_user_id(g.user.id)) return AuthRefusal::BadClaims;
  auto name = doc.FindMember("name");
  if (name != doc.MemberEnd()) {
    if (!name->value.IsString()) return AuthRefusal::BadClaims;
    g.user.name.assign(name->value.GetString(), name->value.GetStringLength());
    if (!protocol::valid_user_name(g.user.name)) return AuthRefusal::BadClaims;
  } else {
    g.user.name = g.user.id;
  }
  auto rooms = doc.FindMember("rooms");
  if (rooms != doc.MemberEnd()) {
    if (!rooms->value.IsArray() || rooms->value.Size() > kMaxRoomPatterns) return AuthRefusal::BadClaims;
    g.rooms_limited = true;
    for (const auto& v : rooms->value.GetArray()) {
      if (!v.IsString()) return AuthRefusal::BadClaims;
      std::string p(v.GetString(), v.GetStringLength());
      if (!valid_pattern(p)) return AuthRefusal::BadClaims;
      g.rooms.push_back(std::move(p));
    }
  }
  // A connection lives until exp + leeway (the same instant a new upgrade with it would be refused).
  // An exp past the year 9999 is kept as that year: later values would overflow the milliseconds of the expiry heap.
  constexpr double kLatestExp = 253402300799.0;
  g.exp = has_exp ? static_cast<int64_t>(exp < kLatestExp ? exp : kLatestExp) : 0;
  *grant = std::move(g);
  return AuthRefusal::None;
}

std::string mint_hs256(const MintOptions& o) {
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) return "";
  JwtPtr j(raw);
  bool ok = jwt_set_alg(j.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(o.secret.data()),
                        static_cast<int>(o.secret.size())) == 0 &&
            jwt_add_grant(j.get(), "sub", o.sub.c_str()) == 0 &&
            jwt_add_grant_int(j.get(), "iat", static_cast<long>(o.now_s)) == 0 &&
            jwt_add_grant_int(j.get(), "exp", static_cast<long>(o.now_s + o.ttl_s)) == 0;
  if (ok && !o.kid.empty()) ok = jwt_add_header(j.get(), "kid", o.kid.c_str()) == 0;
  if (ok && !o.name.empty()) ok = jwt_add_grant(j.get(), "name", o.name.c_str()) == 0;
  if (ok && !o.audience.empty()) ok = jwt_add_grant(j.get(), "aud", o.audience.c_str()) == 0;
  if (ok && !o.issuer.empty()) ok = jwt_add_grant(j.get(), "iss", o.issuer.c_str()) == 0;
  if (ok && !o.rooms.empty()) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("rooms");
    w.StartArray();
    for (const std::string& r : o.rooms) w.String(r.data(), static_cast<rapidjson::SizeType>(r.size()));
    w.EndArray();
    w.EndObject();
    ok = jwt_add_grants_json(j.get(), buf.GetString()) == 0;
  }
  if (!ok) return "";
  char* s = jwt_encode_str(j.get());
  if (!s) return "";
  std::string out(s);
  free(s);
  return out;
}

namespace {

// "3600", "90s", "15m", "1h", "7d" -> seconds; -1 when not a duration.
int64_t parse_duration(const std::string& v) {
  if (v.empty()) return -1;
  char* end = nullptr;
  errno = 0;
  long long n = strtoll(v.c_str(), &end, 10);
  if (errno || end == v.c_str() || n <= 0) return -1;
  std::string unit(end);
  int64_t mult = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : unit == "d" ? 86400 : -1;
  if (mult < 0 || n > 10LL * 365 * 86400 / mult) return -1;
  return n * mult;
}

const char* kTokenUsage =
    "Usage: roomcast token --secret SECRET --sub USER_ID [--name NAME] [--rooms 'support-*,lobby']\n"
    "                      [--ttl 1h] [--kid KID] [--aud AUDIENCE] [--iss ISSUER]\n\n"
    "Prints an HS256 token signed with SECRET (environment ROOMCAST_JWT_SECRET when --secret is not given;\n"
    "KID=SECRET, as the server takes it, also sets the kid; --kid wins),\n"
    "for trying authentication out and for tests. --ttl: seconds, or a number with s, m, h or d (default 1h).\n";

}  // namespace

int token_command(int argc, char** argv) {
  MintOptions o;
  if (const char* env = getenv("ROOMCAST_JWT_SECRET")) split_kid(env, &o.kid, &o.secret);  // KID=SECRET names the kid too
  std::string ttl = "1h", rooms, explicit_kid;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      fputs(kTokenUsage, stdout);
      return 0;
    }
    std::string value;
    size_t eq = a.find('=');
    if (a.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      fprintf(stderr, "roomcast token: %s needs a value\n%s", a.c_str(), kTokenUsage);
      return 2;
    }
    if (a == "--secret") split_kid(value, &o.kid, &o.secret);  // (an explicit --kid is applied below)
    else if (a == "--sub") o.sub = value;
    else if (a == "--name") o.name = value;
    else if (a == "--rooms") rooms = value;
    else if (a == "--ttl") ttl = value;
    else if (a == "--kid") explicit_kid = value;
    else if (a == "--aud") o.audience = value;
    else if (a == "--iss") o.issuer = value;
    else {
      fprintf(stderr, "roomcast token: unknown option %s\n%s", a.c_str(), kTokenUsage);
      return 2;
    }
  }
  if (!explicit_kid.empty()) o.kid = explicit_kid;
  if (o.secret.empty() || o.sub.empty()) {
    fprintf(stderr, "roomcast token: --secret and --sub are required\n%s", kTokenUsage);
    return 2;
  }
  if (o.secret.size() < 16) {
    fprintf(stderr, "roomcast token: the secret needs at least 16 bytes (the server refuses shorter ones)\n");
    return 2;
  }
  if (!protocol::valid_user_id(o.sub)) {
    fprintf(stderr, "roomcast token: --sub must be 1-64 characters of A-Z a-z 0-9 _ - . :\n");
    return 2;
  }
  if (!o.name.empty() && !protocol::valid_user_name(o.name)) {
    fprintf(stderr, "roomcast token: --name must be 1-64 characters of UTF-8 without control characters\n");
    return 2;
  }
  o.ttl_s = parse_duration(ttl);
  if (o.ttl_s < 0) {
    fprintf(stderr, "roomcast token: bad --ttl '%s' (seconds, or a number with s, m, h or d)\n", ttl.c_str());
    return 2;
  }
  size_t start = 0;
  while (!rooms.empty() && start <= rooms.size()) {
    size_t comma = rooms.find(',', start);
    std::string item = rooms.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) {
      if (!valid_pattern(item)) {
        fprintf(stderr, "roomcast token: bad room pattern '%s' (a room id, or a prefix ending in *)\n", item.c_str());
        return 2;
      }
      o.rooms.push_back(item);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  o.now_s = static_cast<int64_t>(time(nullptr));
  std::string t = mint_hs256(o);
  if (t.empty()) {
    fprintf(stderr, "roomcast token: libjwt could not sign the token\n");
    return 1;
  }
  puts(t.c_str());
  return 0;
}

}  // namespace roomcast::server
