// Where a bias report's groups come from: a user's CSV, or an attribute model's estimates aggregated per person.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "core/parallel.hpp"
#include "facekit/bias.hpp"
#include "facekit/error.hpp"
#include "facekit/image.hpp"

namespace facekit {

namespace {

std::string person_of(const std::string& image) {
  return std::filesystem::path(image).parent_path().filename().string();
}

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r");
  const auto e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string f;
  while (std::getline(ss, f, ',')) out.push_back(trim(f));
  if (!line.empty() && line.back() == ',') out.emplace_back();
  return out;
}

}  // namespace

std::string GroupTable::label(const std::string& image, size_t k) const {
  if (const auto it = by_image.find(image); it != by_image.end() && k < it->second.size() && !it->second[k].empty())
    return it->second[k];
  if (const auto it = by_person.find(person_of(image)); it != by_person.end() && k < it->second.size())
    return it->second[k];
  return {};
}

GroupTable read_group_csv(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot read the groups file " + file.string());
  GroupTable t;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    const std::string s = trim(line);
    if (s.empty() || s[0] == '#') continue;
    const auto f = split_csv(s);
    if (t.attributes.empty()) {
      if (f.size() < 2) throw Error(ErrorCode::kInvalidArgument, file.string() + ":" + std::to_string(n) +
                                                                  ": the header must be image,ATTRIBUTE[,ATTRIBUTE...]");
      t.attributes.assign(f.begin() + 1, f.end());
      for (const auto& a : t.attributes)
        if (a.empty()) throw Error(ErrorCode::kInvalidArgument, file.string() + ":" + std::to_string(n) + ": an empty attribute name");
      continue;
    }
    if (f.size() != t.attributes.size() + 1 || f[0].empty())
      throw Error(ErrorCode::kInvalidArgument, file.string() + ":" + std::to_string(n) + ": expected " +
                                                   std::to_string(t.attributes.size() + 1) + " fields (image and one per attribute)");
    std::vector<std::string> labels(f.begin() + 1, f.end());
    // A key with an extension or a slash is an image path; otherwise a person (folder) name.
    const bool image = f[0].find('/') != std::string::npos || std::filesystem::path(f[0]).has_extension();
    auto& map = image ? t.by_image : t.by_person;
    if (!map.emplace(f[0], std::move(labels)).second)
      throw Error(ErrorCode::kInvalidArgument, file.string() + ":" + std::to_string(n) + ": '" + f[0] + "' is listed twice");
  }
  if (t.attributes.empty()) throw Error(ErrorCode::kInvalidArgument, file.string() + " has no header line");
  return t;
}

void write_group_csv(const std::filesystem::path& file, const GroupTable& t) {
  std::ofstream out(file);
  if (!out) throw Error(ErrorCode::kInvalidArgument, "cannot write " + file.string());
  out << "image";
  for (const auto& a : t.attributes) out << ',' << a;
  out << '\n';
  const auto row = [&](const std::string& key, const std::vector<std::string>& v) {
    out << key;
    for (const auto& x : v) out << ',' << x;
    out << '\n';
  };
  // Person rows, then the photos whose own label differs from their person's (a person row also labels
  // photos the table never saw, e.g. a person's profile photos in another pair list).
  for (const auto& [k, v] : t.by_person) row(k, v);
  for (const auto& [k, v] : t.by_image) {
    const auto it = t.by_person.find(person_of(k));
    if (it == t.by_person.end() || it->second != v) row(k, v);
  }
  if (!out) throw Error(ErrorCode::kInvalidArgument, "cannot write " + file.string());
}

std::string age_band(float years) {
  if (years < 30) return "<30";
  if (years < 50) return "30-49";
  return "50+";
}

GroupTable estimate_groups(const LfwReport& report, const std::filesystem::path& root, const AttributeEstimator& model,
                           const GroupEstimateOptions& o, std::vector<AttributeReliability>* reliability,
                           const std::function<void(int, int)>& progress) {
  std::vector<size_t> with;  // indices of image_faces with a picked face
  for (size_t i = 0; i < report.image_faces.size(); ++i)
    if (report.image_faces[i].picked) with.push_back(i);
  std::vector<FaceAttributes> est(report.image_faces.size());
  const int batch = std::max(1, o.batch);
  const size_t chunks = (with.size() + static_cast<size_t>(batch) - 1) / static_cast<size_t>(batch);
  std::mutex mu;
  int done = 0;
  detail::parallel_for(chunks, o.threads, [&](size_t c) {
    const size_t b = c * static_cast<size_t>(batch), e = std::min(with.size(), b + static_cast<size_t>(batch));
    std::vector<Image> imgs;
    std::vector<Face> faces;
    for (size_t i = b; i < e; ++i) {
      const auto& f = report.image_faces[with[i]];
      const auto path = std::filesystem::path(f.path).is_absolute() ? std::filesystem::path(f.path) : root / f.path;
      imgs.push_back(load_image(path));
      faces.push_back(*f.picked);
    }
    std::vector<const Image*> ptrs;
    for (const auto& im : imgs) ptrs.push_back(&im);
    auto out = model.estimate_batch(ptrs, faces);
    for (size_t i = b; i < e; ++i) est[with[i]] = std::move(out[i - b]);
    if (progress) {
      std::lock_guard lock(mu);
      done += static_cast<int>(e - b);
      progress(done, static_cast<int>(with.size()));
    }
  });

  // Which attributes the model gives (a model may give only some).
  bool has_gender = false, has_group = false, has_age = false;
  for (size_t i : with) {
    has_gender |= !est[i].gender.empty();
    has_group |= !est[i].group.empty();
    has_age |= !est[i].age_group.empty();
  }
  GroupTable t;
  t.estimated = true;
  enum Kind { kGender, kGroup, kAge };
  std::vector<Kind> kinds;
  if (has_gender) kinds.push_back(kGender), t.attributes.push_back("gender");
  if (has_group) kinds.push_back(kGroup), t.attributes.push_back("group");
  if (has_age) kinds.push_back(kAge), t.attributes.push_back("age");
  // Per person (or photo): summed label probabilities of each categorical attribute, summed expected age.
  struct Person {
    std::vector<std::map<std::string, double>> p;
    double age = 0;
    int n = 0;
    std::vector<size_t> photos;
  };
  const auto categorical = [&](const FaceAttributes& f, Kind k) -> const std::vector<LabelScore>& {
    return k == kGender ? f.gender : f.group;
  };
  std::map<std::string, Person> people;
  for (size_t i : with) {
    const auto& f = report.image_faces[i];
    auto& p = people[o.by_person ? person_of(f.path) : f.path];
    p.p.resize(kinds.size());
    for (size_t k = 0; k < kinds.size(); ++k)
      if (kinds[k] != kAge)
        for (const auto& l : categorical(est[i], kinds[k])) p.p[k][l.label] += l.probability;
    p.age += est[i].age;
    p.n++;
    p.photos.push_back(i);
  }
  const auto best = [](const std::map<std::string, double>& m) {
    std::string b;
    double v = -1;
    for (const auto& [l, x] : m)
      if (x > v) v = x, b = l;
    return b;
  };
  std::vector<AttributeReliability> rel(kinds.size());
  for (size_t k = 0; k < kinds.size(); ++k) rel[k].attribute = t.attributes[k];
  for (auto& [key, p] : people) {
    std::vector<std::string> labels;
    for (size_t k = 0; k < kinds.size(); ++k)
      labels.push_back(kinds[k] == kAge ? age_band(static_cast<float>(p.age / p.n)) : best(p.p[k]));
    if (o.by_person) t.by_person[key] = labels;
    for (size_t i : p.photos) {
      const auto& e = est[i];
      t.by_image[report.image_faces[i].path] = labels;
      for (size_t k = 0; k < kinds.size(); ++k) {
        const bool age = kinds[k] == kAge;
        const auto& v = age ? e.age_group : categorical(e, kinds[k]);
        rel[k].mean_top_probability += v.empty() ? 0.0 : v.front().probability;
        if (o.by_person && p.n >= 2) {
          rel[k].photos++;
          const std::string own = age ? age_band(e.age) : (v.empty() ? std::string() : v.front().label);
          rel[k].photo_agreement += own == labels[k];
        }
      }
    }
    for (size_t k = 0; k < kinds.size(); ++k) {
      rel[k].people_per_label[labels[k]]++;
      if (o.by_person && p.n >= 2) rel[k].people++;
    }
  }
  for (auto& r : rel) {
    r.mean_top_probability /= std::max<size_t>(1, with.size());
    r.photo_agreement = r.photos > 0 ? r.photo_agreement / r.photos : std::nan("");
  }
  if (reliability) *reliability = std::move(rel);
  return t;
}

std::vector<GroupedPair> grouped_pairs(const LfwReport& report, const GroupTable& t, size_t k, bool all_pairs,
                                       std::vector<std::string>& groups, std::int64_t* left_out) {
  if (k >= t.attributes.size()) throw Error(ErrorCode::kInvalidArgument, "no attribute number " + std::to_string(k));
  std::map<std::string, std::string> label;  // image -> label
  std::set<std::string> names;
  for (const auto& f : report.image_faces) {
    const std::string l = t.label(f.path, k);
    label[f.path] = l;
    if (!l.empty()) names.insert(l);
  }
  groups.assign(names.begin(), names.end());
  const auto index = [&](const std::string& l) {
    return static_cast<int>(std::lower_bound(groups.begin(), groups.end(), l) - groups.begin());
  };
  std::map<std::string, int> subject_ids;  // person folder -> subject id, for the bootstrap over people
  const auto subject = [&](const std::string& image) {
    return subject_ids.emplace(person_of(image), static_cast<int>(subject_ids.size())).first->second;
  };
  std::vector<GroupedPair> out;
  std::int64_t dropped = 0;
  if (!all_pairs) {
    for (size_t i = 0; i < report.pairs.size(); ++i) {
      const auto& p = report.pairs[i];
      const std::string& la = label[p.a];
      const std::string& lb = label[p.b];
      if (la.empty() || lb.empty()) {
        dropped++;
        continue;
      }
      const auto& s = report.scored.at(i);
      out.push_back({s.distance, s.same, s.valid, index(la), index(lb), subject(p.a), subject(p.b)});
    }
  } else {
    // Every pair of distinct images: genuine when both are in one folder. A photo without a face makes every
    // pair it is in a failure to acquire.
    const auto& im = report.image_faces;
    std::vector<int> g(im.size());
    std::vector<int> person(im.size());
    for (size_t i = 0; i < im.size(); ++i) {
      const std::string& l = label[im[i].path];
      g[i] = l.empty() ? -1 : index(l);
      person[i] = subject(im[i].path);
    }
    out.reserve(im.size() * (im.size() - 1) / 2);
    for (size_t i = 0; i < im.size(); ++i)
      for (size_t j = i + 1; j < im.size(); ++j) {
        if (g[i] < 0 || g[j] < 0) {
          dropped++;
          continue;
        }
        GroupedPair q;
        q.same = person[i] == person[j];
        q.valid = !im[i].embedding.empty() && !im[j].embedding.empty();
        q.distance = q.valid ? l2_distance(im[i].embedding, im[j].embedding) : 0.f;
        q.group_a = g[i];
        q.group_b = g[j];
        q.subject_a = person[i];
        q.subject_b = person[j];
        out.push_back(q);
      }
  }
  if (left_out) *left_out = dropped;
  return out;
}

}  // namespace facekit
