// The web client's files, read into memory once at start-up and served from there.
// Rule: bounded: at most 1000 files and 64 MiB, so a wrong --static cannot eat the machine.
#include "server/static_files.h"

#include <uv.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "protocol/http_path.h"
#include "server/log.h"

#ifndef ROOMCAST_DEFAULT_STATIC
#define ROOMCAST_DEFAULT_STATIC "client-web"
#endif
#ifndef ROOMCAST_INSTALLED_STATIC
#define ROOMCAST_INSTALLED_STATIC "../share/roomcast/client-web"
#endif

namespace roomcast::server {

namespace fs = std::filesystem;

int StaticFiles::load(const std::string& dir) {
  std::error_code ec;
  fs::path root = fs::weakly_canonical(dir, ec);
  if (ec || !fs::is_directory(root, ec)) return -1;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    fs::file_status st = it->symlink_status(ec);
    if (ec || !fs::is_regular_file(st)) continue;
    if (files_.size() >= 1000 || bytes_ > 64u * 1024 * 1024) {
      LOG_WARN("static: over 1000 files or 64 MiB in %s; the rest is not served", root.c_str());
      break;
    }
    std::ifstream in(it->path(), std::ios::binary);
    std::ostringstream body;
    body << in.rdbuf();
    std::string name = fs::relative(it->path(), root, ec).generic_string();
    if (ec) continue;
    File f{body.str(), protocol::content_type_for(name)};
    bytes_ += f.body.size();
    files_[name] = std::move(f);
  }
  return static_cast<int>(files_.size());
}

std::string default_static_dir() {
  char exe[4096];
  size_t size = sizeof(exe);
  if (uv_exepath(exe, &size) == 0) {
    std::error_code ec;
    fs::path installed = (fs::path(std::string(exe, size)).parent_path() / ROOMCAST_INSTALLED_STATIC).lexically_normal();
    if (fs::is_directory(installed, ec)) return installed.string();
  }
  return ROOMCAST_DEFAULT_STATIC;
}

const StaticFiles::File* StaticFiles::find(const std::string& name) const {
  auto it = files_.find(name);
  return it == files_.end() ? nullptr : &it->second;
}

}  // namespace roomcast::server
