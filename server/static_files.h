// The web client's files, read into memory once at start-up and served from there.
// Rule: only names found in the folder at start-up exist; a request path is a map key, never a file-system path.
#pragma once
#include <string>
#include <unordered_map>

namespace roomcast::server {

class StaticFiles {
 public:
  struct File {
    std::string body;       // the file's bytes
    const char* type;       // Content-Type
  };
  // Loads every regular file below dir (symbolic links are skipped). Returns the number of files,
  // or -1 when dir cannot be read.
  int load(const std::string& dir);
  // Returns the file at a sanitised relative name ("index.html", "css/a.css"), or nullptr.
  const File* find(const std::string& name) const;
  size_t count() const { return files_.size(); }
  size_t bytes() const { return bytes_; }

 private:
  std::unordered_map<std::string, File> files_;  // relative name -> file
  size_t bytes_ = 0;                             // total size
};

// The web client's folder when --static is not given: <exe dir>/../share/roomcast/client-web (an installed
// binary, found through uv_exepath, i.e. /proc/self/exe) when that folder exists, else the source tree's
// client-web baked in at build time (a development build run from its build tree).
std::string default_static_dir();

}  // namespace roomcast::server
