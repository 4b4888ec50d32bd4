// Whole-file reads and crash-safe writes, shared by every format we save (.npy, checkpoints).
#pragma once

#include <string>

namespace nl {

// Reads the whole file; throws nl::Error("<op>: cannot open <path>: <reason>").
std::string read_file(const std::string& path, const char* op);

// Writes to "<path>.tmp.<pid>" in the same folder, flushes it to disk, then renames it over `path`, so a
// crash leaves either the old file or the new one, never half of one.
void write_file_atomically(const std::string& path, const std::string& bytes, const char* op);

}  // namespace nl
