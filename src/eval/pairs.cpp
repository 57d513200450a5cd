// Pair lists in LFW's format or CSV, and per-pair score files.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "facekit/error.hpp"
#include "facekit/eval.hpp"

namespace facekit {
namespace fs = std::filesystem;

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  std::string t = s.substr(b, e - b + 1);
  if (t.size() >= 2 && t.front() == '"' && t.back() == '"') t = t.substr(1, t.size() - 2);
  return t;
}

// Fields of one CSV line. Quoted fields may hold commas; "" inside quotes is a quote.
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quoted) {
      if (ch == '"' && i + 1 < line.size() && line[i + 1] == '"') cur += '"', ++i;
      else if (ch == '"') quoted = false;
      else cur += ch;
    } else if (ch == '"') {
      quoted = true;
    } else if (ch == ',') {
      out.push_back(trim(cur));
      cur.clear();
    } else {
      cur += ch;
    }
  }
  out.push_back(trim(cur));
  return out;
}

std::string csv_quote(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// 1/0, true/false, yes/no; nullopt for anything else (a header's "same").
std::optional<bool> parse_same(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "1" || s == "true" || s == "yes") return true;
  if (s == "0" || s == "false" || s == "no") return false;
  return std::nullopt;
}

bool looks_like_csv(const fs::path& file) {
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    return t.find(',') != std::string::npos;
  }
  return false;
}

}  // namespace

std::vector<LfwPair> read_pairs(const fs::path& file, int folds_if_absent) {
  if (!fs::is_regular_file(file)) throw Error(ErrorCode::kNotFound, "cannot open pairs file " + file.string());
  if (!looks_like_csv(file)) return read_lfw_pairs(file);
  if (folds_if_absent < 1) throw Error(ErrorCode::kInvalidArgument, "folds must be at least 1");
  std::ifstream in(file);
  std::vector<LfwPair> pairs;
  std::vector<long long> fold_values;
  int with_fold = 0, lineno = 0;
  bool first = true;
  for (std::string line; std::getline(in, line);) {
    ++lineno;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    const auto f = csv_fields(line);
    const auto where = file.string() + ":" + std::to_string(lineno) + ": ";
    if (f.size() < 3 || f.size() > 4)
      throw Error(ErrorCode::kInvalidArgument, where + "expected a,b,same[,fold], got " + std::to_string(f.size()) + " fields");
    const auto same = parse_same(f[2]);
    if (!same) {
      if (first) {  // a header line
        first = false;
        continue;
      }
      throw Error(ErrorCode::kInvalidArgument, where + "same must be 1/0, true/false or yes/no, not '" + f[2] + "'");
    }
    first = false;
    if (f[0].empty() || f[1].empty()) throw Error(ErrorCode::kInvalidArgument, where + "an image path is empty");
    LfwPair p{f[0], f[1], *same, 0};
    long long fold = -1;
    if (f.size() == 4 && !f[3].empty()) {
      size_t used = 0;
      try {
        fold = std::stoll(f[3], &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != f[3].size()) throw Error(ErrorCode::kInvalidArgument, where + "fold must be an integer, not '" + f[3] + "'");
      ++with_fold;
    }
    fold_values.push_back(fold);
    pairs.push_back(std::move(p));
  }
  if (pairs.empty()) throw Error(ErrorCode::kInvalidArgument, file.string() + " holds no pairs");
  if (with_fold != 0 && with_fold != static_cast<int>(pairs.size()))
    throw Error(ErrorCode::kInvalidArgument, file.string() + ": " + std::to_string(with_fold) + " of " +
                                                 std::to_string(pairs.size()) + " pairs give a fold; give all or none");
  if (with_fold) {
    std::map<long long, int> renumber;
    for (long long v : fold_values) renumber.emplace(v, 0);
    int k = 0;
    for (auto& [v, i] : renumber) i = k++;
    for (size_t i = 0; i < pairs.size(); ++i) pairs[i].fold = renumber[fold_values[i]];
  } else {
    for (size_t i = 0; i < pairs.size(); ++i) pairs[i].fold = static_cast<int>(i % folds_if_absent);
  }
  return pairs;
}

void write_pair_scores(const fs::path& file, const std::vector<LfwPair>& pairs, const std::vector<ScoredPair>& scored,
                       const std::vector<double>& probability) {
  if (pairs.size() != scored.size() || (!probability.empty() && probability.size() != scored.size()))
    throw Error(ErrorCode::kInvalidArgument, "write_pair_scores: one score per pair needed");
  std::ofstream out(file);
  out << "a,b,same,fold,valid,distance" << (probability.empty() ? "" : ",probability") << "\n";
  char num[32];
  for (size_t i = 0; i < pairs.size(); ++i) {
    const auto& s = scored[i];
    out << csv_quote(pairs[i].a) << ',' << csv_quote(pairs[i].b) << ',' << (s.same ? 1 : 0) << ',' << s.fold << ','
        << (s.valid ? 1 : 0) << ',';
    if (s.valid) {
      std::snprintf(num, sizeof num, "%.6f", s.distance);
      out << num;
    }
    if (!probability.empty()) {
      out << ',';
      if (s.valid) {
        std::snprintf(num, sizeof num, "%.6f", probability[i]);
        out << num;
      }
    }
    out << '\n';
  }
  if (!out.flush()) throw Error(ErrorCode::kInvalidArgument, "cannot write " + file.string());
}

std::vector<ScoredPair> read_pair_scores(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot open scores file " + file.string());
  std::string line;
  std::getline(in, line);
  const auto head = csv_fields(line);
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < head.size(); ++i) col[head[i]] = i;
  for (const char* need : {"same", "fold", "valid", "distance"})
    if (!col.count(need))
      throw Error(ErrorCode::kInvalidArgument, file.string() + ": not a scores file (no '" + need + "' column)");
  std::vector<ScoredPair> out;
  int lineno = 1;
  while (std::getline(in, line)) {
    ++lineno;
    if (trim(line).empty()) continue;
    const auto f = csv_fields(line);
    const auto where = file.string() + ":" + std::to_string(lineno) + ": ";
    if (f.size() != head.size()) throw Error(ErrorCode::kInvalidArgument, where + "wrong number of fields");
    ScoredPair p;
    try {
      const auto same = parse_same(f[col["same"]]);
      const auto valid = parse_same(f[col["valid"]]);
      if (!same || !valid) throw std::invalid_argument("flag");
      p.same = *same;
      p.valid = *valid;
      p.fold = std::stoi(f[col["fold"]]);
      p.distance = p.valid ? std::stof(f[col["distance"]]) : 0.f;
    } catch (const std::exception&) {
      throw Error(ErrorCode::kInvalidArgument, where + "not a scored pair");
    }
    out.push_back(p);
  }
  return out;
}

}  // namespace facekit
