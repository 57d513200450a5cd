#include "facekit/cluster_review.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "facekit/error.hpp"
#include "facekit/json.hpp"
#include "facekit/model.hpp"
#include "gallery/atomic_file.hpp"

namespace facekit {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr char kFormat[] = "facekit-cluster-state";
constexpr int kVersion = 1;

json face_json(const ReviewFace& f) {
  return {{"key", f.key()},
          {"photo", f.photo},
          {"index", f.index},
          {"box", {f.box.x, f.box.y, f.box.width, f.box.height}},
          {"score", f.score},
          {"main", f.main}};
}

ReviewFace face_from(const json& j) {
  ReviewFace f;
  f.photo = j.at("photo").get<std::string>();
  f.index = j.at("index").get<int>();
  const auto& b = j.at("box");
  f.box = {b.at(0).get<float>(), b.at(1).get<float>(), b.at(2).get<float>(), b.at(3).get<float>()};
  f.score = j.at("score").get<float>();
  f.main = j.at("main").get<bool>();
  return f;
}

// "12" or "#12" -> 12; anything else -> -1.
int parse_id(const std::string& ref) {
  const std::string s = !ref.empty() && ref[0] == '#' ? ref.substr(1) : ref;
  if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); })) return -1;
  return std::stoi(s);
}

std::string person_ref(const ReviewCluster& c) { return c.name.empty() ? "#" + std::to_string(c.id) : c.name; }

// Per face of `scan`, its place among its photo's faces: the K of its key.
std::vector<int> index_in_photo(const LibraryScan& scan) {
  std::vector<int> k;
  k.reserve(scan.faces.size());
  std::unordered_map<int, int> seen;  // photo -> faces so far
  for (const auto& f : scan.faces) k.push_back(seen[f.photo]++);
  return k;
}

// Face key -> its index in `scan`.
std::unordered_map<std::string, size_t> index_keys(const LibraryScan& scan) {
  const auto keys = face_keys(scan);
  std::unordered_map<std::string, size_t> at;
  for (size_t i = 0; i < keys.size(); ++i) at[keys[i]] = i;
  return at;
}

// The face of `scan` with this key; Error(kNotFound) when the cache does not hold it.
const LibraryFace& face_in(const LibraryScan& scan, const std::unordered_map<std::string, size_t>& at, const std::string& key) {
  const auto it = at.find(key);
  if (it == at.end()) throw Error(ErrorCode::kNotFound, "face " + key + " is not in the face cache: cluster again");
  return scan.faces[it->second];
}

// Moves the face `key` (if there) from `faces` to `to`.
void move_out(std::vector<ReviewFace>& faces, const std::string& key, std::vector<ReviewFace>& to) {
  std::erase_if(faces, [&](const ReviewFace& f) {
    if (f.key() != key) return false;
    to.push_back(f);
    return true;
  });
}

}  // namespace

std::vector<std::string> face_keys(const LibraryScan& scan) {
  const auto k = index_in_photo(scan);
  std::vector<std::string> keys;
  keys.reserve(scan.faces.size());
  for (size_t i = 0; i < scan.faces.size(); ++i)
    keys.push_back(scan.photos.at(static_cast<size_t>(scan.faces[i].photo)) + "#" + std::to_string(k[i]));
  return keys;
}

std::vector<SeedPerson> gallery_seeds(const Gallery& gallery, const EmbedderId& embedder) {
  std::vector<SeedPerson> out;
  for (const auto& p : gallery.people()) {
    SeedPerson s{p.name, {}};
    for (const auto& t : gallery.templates_of(p.id))
      if (t.embedder == embedder) s.embeddings.push_back(t.embedding);
    if (!s.embeddings.empty()) out.push_back(std::move(s));
  }
  return out;
}

ClusterReview ClusterReview::load(const fs::path& file) {
  ClusterReview r;
  if (!fs::exists(file)) return r;
  std::ifstream in(file);
  json j;
  try {
    j = json::parse(in);
    if (!j.is_object() || j.value("format", "") != kFormat)
      throw Error(ErrorCode::kInvalidArgument, file.string() + " is not a facekit cluster state (an output of an older "
                                                               "facekit? cluster again into a new file)");
    if (j.at("version").get<int>() > kVersion)
      throw Error(ErrorCode::kInvalidArgument, file.string() + " was written by a newer facekit");
    r.embedder = j.at("embedder").get<std::string>();
    r.options.threshold = j.at("threshold").get<float>();
    r.options.size_allowance = j.at("size_allowance").get<float>();
    r.options.min_cluster_size = j.at("min_cluster_size").get<int>();
    r.cache = j.at("cache").get<std::string>();
    r.photos = j.at("photos").get<int>();
    r.next_id_ = j.at("next_id").get<int>();
    for (const auto& c : j.at("clusters")) {
      ReviewCluster rc;
      rc.id = c.at("cluster").get<int>();
      rc.name = c.at("name").get<std::string>();
      for (const auto& f : c.at("faces")) rc.faces.push_back(face_from(f));
      if (rc.id <= 0 || rc.id >= r.next_id_) throw Error(ErrorCode::kInvalidArgument, "cluster id out of range");
      r.clusters_.push_back(std::move(rc));
    }
    for (const auto& f : j.at("unclustered")) r.unclustered_.push_back(face_from(f));
    for (const auto& n : j.at("not")) r.not_.push_back({n.at("face").get<std::string>(), n.at("person").get<std::string>()});
    for (const auto& u : j.at("unreadable")) r.unreadable.push_back(u.get<std::string>());
  } catch (const json::exception& e) {
    throw Error(ErrorCode::kInvalidArgument, file.string() + " is not a valid facekit cluster state: " + e.what());
  }
  return r;
}

void ClusterReview::save(const fs::path& file) const {
  json clusters = json::array(), lone = json::array(), nots = json::array();
  for (const auto* c : by_size()) {
    json faces = json::array();
    for (const auto& f : c->faces) faces.push_back(face_json(f));
    clusters.push_back({{"cluster", c->id}, {"name", c->name}, {"size", c->faces.size()}, {"faces", faces}});
  }
  for (const auto& f : unclustered_) lone.push_back(face_json(f));
  for (const auto& n : not_) nots.push_back({{"face", n.face}, {"person", n.person}});
  size_t faces = unclustered_.size();
  for (const auto& c : clusters_) faces += c.faces.size();
  const json doc = {{"format", kFormat},
                    {"version", kVersion},
                    {"schema_version", json_view::kSchemaVersion},
                    {"embedder", embedder},
                    {"method", to_string(options.method)},
                    {"threshold", options.threshold},
                    {"size_allowance", options.size_allowance},
                    {"min_cluster_size", options.min_cluster_size},
                    {"cache", cache.string()},
                    {"photos", photos},
                    {"faces", faces},
                    {"next_id", next_id_},
                    {"clusters", clusters},
                    {"unclustered", lone},
                    {"not", nots},
                    {"unreadable", unreadable}};
  write_file_atomically(file, [&](std::ostream& o) { o << json_view::dump(doc, 1) << "\n"; });
}

std::vector<const ReviewCluster*> ClusterReview::by_size() const {
  std::vector<const ReviewCluster*> v;
  for (const auto& c : clusters_) v.push_back(&c);
  std::stable_sort(v.begin(), v.end(), [](const auto* a, const auto* b) {
    return a->faces.size() != b->faces.size() ? a->faces.size() > b->faces.size() : a->id < b->id;
  });
  return v;
}

const ReviewCluster& ClusterReview::cluster(int id) const {
  for (const auto& c : clusters_)
    if (c.id == id) return c;
  throw Error(ErrorCode::kNotFound, "no cluster " + std::to_string(id));
}

ReviewCluster& ClusterReview::mutable_cluster(int id) { return const_cast<ReviewCluster&>(cluster(id)); }

const ReviewCluster& ClusterReview::find(const std::string& ref) const {
  if (const int id = parse_id(ref); id >= 0) return cluster(id);
  for (const auto& c : clusters_)
    if (!c.name.empty() && c.name == ref) return c;
  throw Error(ErrorCode::kNotFound, "no cluster named " + ref);
}

void ClusterReview::rename_constraints(const std::string& from, const std::string& to) {
  for (auto& n : not_)
    if (n.person == from) n.person = to;
  std::set<std::pair<std::string, std::string>> seen;
  std::erase_if(not_, [&](const NotSame& n) { return !seen.insert({n.face, n.person}).second; });
}

ReviewUpdate ClusterReview::update(const LibraryScan& scan, const ClusterOptions& o, const std::vector<SeedPerson>& seeds,
                                   bool recluster) {
  if (!embedder.empty() && embedder != scan.embedder)
    throw Error(ErrorCode::kInvalidArgument, "this cluster state holds " + embedder + " faces, not " + scan.embedder +
                                                 "'s: cluster into a new file");
  const bool keeps = !clusters_.empty() || !not_.empty() || !seeds.empty();
  if (o.method != ClusterMethod::kAgglomerative && keeps)
    throw Error(ErrorCode::kInvalidArgument, "only agglomerative clustering keeps reviewed clusters, constraints and gallery people");
  ReviewUpdate rep;
  const auto keys = face_keys(scan);
  const auto index = index_in_photo(scan);
  const size_t n = scan.faces.size();
  rep.faces = static_cast<int>(n);

  // The state's faces: which cluster each key was in.
  std::unordered_map<std::string, int> cluster_of;  // key -> cluster id
  std::unordered_set<std::string> known;
  for (const auto& c : clusters_)
    for (const auto& f : c.faces) cluster_of[f.key()] = c.id, known.insert(f.key());
  for (const auto& f : unclustered_) known.insert(f.key());
  std::unordered_set<std::string> present(keys.begin(), keys.end());
  for (const auto& k : known)
    if (!present.count(k)) rep.dropped++;

  // Groups that start as clusters: kept clusters, then gallery people without a cluster of their name.
  std::vector<const ReviewCluster*> kept;
  std::unordered_map<int, int> group_of_cluster;
  for (const auto& c : clusters_)
    if (!recluster || !c.name.empty()) group_of_cluster[c.id] = static_cast<int>(kept.size()), kept.push_back(&c);
  std::vector<std::string> group_name;  // names of groups made for seeds
  std::vector<Embedding> e;
  std::vector<int> photo, start;
  for (size_t i = 0; i < n; ++i) {
    e.push_back(scan.faces[i].embedding);
    photo.push_back(scan.faces[i].photo);
    const auto it = cluster_of.find(keys[i]);
    start.push_back(it != cluster_of.end() && group_of_cluster.count(it->second) ? group_of_cluster[it->second] : -1);
    if (!known.count(keys[i])) rep.new_faces++;
  }
  int next_photo = -1;  // seeds' own photo ids, unlike any real one
  for (const auto& s : seeds) {
    int g = -1;
    for (const auto* c : kept)
      if (c->name == s.name) g = group_of_cluster[c->id];
    if (g < 0) {
      g = static_cast<int>(kept.size() + group_name.size());
      group_name.push_back(s.name);
    }
    for (const auto& emb : s.embeddings) e.push_back(emb), photo.push_back(next_photo--), start.push_back(g);
  }
  // Cannot-link tokens: 0 keeps every starting group apart from every other; then one per "not" person.
  std::vector<std::vector<int>> apart(e.size());
  for (size_t i = 0; i < e.size(); ++i)
    if (start[i] >= 0) apart[i].push_back(0);
  const auto index_of_key = index_keys(scan);
  std::unordered_map<std::string, int> token_of_person;
  for (const auto& c : not_) {
    const auto it = index_of_key.find(c.face);
    if (it == index_of_key.end()) continue;  // the face's photo is gone
    int g = -1;
    if (const int id = parse_id(c.person); id >= 0) {
      if (group_of_cluster.count(id)) g = group_of_cluster[id];
    } else {
      for (const auto* k : kept)
        if (k->name == c.person) g = group_of_cluster[k->id];
      for (size_t s = 0; s < group_name.size(); ++s)
        if (group_name[s] == c.person) g = static_cast<int>(kept.size() + s);
    }
    if (g < 0) continue;  // no such person now: the constraint waits
    const auto [tok, fresh] = token_of_person.emplace(c.person, static_cast<int>(token_of_person.size()) + 1);
    if (fresh)
      for (size_t i = 0; i < e.size(); ++i)
        if (start[i] == g) apart[i].push_back(tok->second);
    apart[it->second].push_back(tok->second);
  }
  ClusterOptions o1 = o;
  o1.min_cluster_size = 1;  // kept clusters of one face stay; new groups are sized below
  const ClusterResult r = keeps ? cluster_faces(e, photo, o1, {start, apart}) : cluster_faces(e, photo, o1);
  rep.seconds = r.seconds;

  // Each result label: the starting group in it (at most one: token 0), else a new cluster.
  std::unordered_map<int, int> group_of_label;
  std::unordered_map<int, int> faces_of_label;
  for (size_t i = 0; i < e.size(); ++i) {
    if (r.label[i] < 0) continue;
    if (start[i] >= 0) group_of_label[r.label[i]] = start[i];
    if (i < n) faces_of_label[r.label[i]]++;
  }
  std::vector<ReviewCluster> out;
  std::unordered_map<int, size_t> out_of_label;
  for (const auto* c : kept) out.push_back({c->id, c->name, {}});
  for (const auto& name : group_name) out.push_back({0, name, {}});
  std::vector<ReviewFace> lone;
  for (size_t i = 0; i < n; ++i) {
    const auto& lf = scan.faces[i];
    ReviewFace f{scan.photos[static_cast<size_t>(lf.photo)], index[i], lf.face.box, lf.face.score, lf.main};
    const int l = r.label[i];
    size_t at = SIZE_MAX;
    if (l >= 0) {
      if (const auto g = group_of_label.find(l); g != group_of_label.end()) {
        at = static_cast<size_t>(g->second);
      } else if (faces_of_label[l] >= o.min_cluster_size) {
        const auto [it, fresh] = out_of_label.emplace(l, out.size());
        if (fresh) out.push_back({0, "", {}});
        at = it->second;
      }
    }
    if (at == SIZE_MAX) {
      lone.push_back(std::move(f));
      continue;
    }
    if (!known.count(keys[i]) && at < kept.size() + group_name.size()) {
      rep.joined++;
      if (!out[at].name.empty()) rep.joined_named[out[at].name]++;
    }
    out[at].faces.push_back(std::move(f));
  }
  // Clusters left without faces (their photos gone, or a gallery person nobody in the library resembles) go.
  std::vector<ReviewCluster> final;
  for (auto& c : out)
    if (!c.faces.empty()) final.push_back(std::move(c));
  // New clusters are numbered largest first, as a first run lists them.
  std::vector<ReviewCluster*> fresh;
  for (auto& c : final)
    if (c.id == 0) fresh.push_back(&c);
  std::stable_sort(fresh.begin(), fresh.end(), [](const auto* a, const auto* b) { return a->faces.size() > b->faces.size(); });
  for (auto* c : fresh) {
    c->id = next_id_++;
    if (c->name.empty()) rep.new_clusters++;
  }
  clusters_ = std::move(final);
  unclustered_ = std::move(lone);
  embedder = scan.embedder;
  options = o;
  photos = static_cast<int>(scan.photos.size());
  unreadable = scan.failed;
  return rep;
}

void ClusterReview::name(int id, const std::string& new_name) {
  check_person_name(new_name);
  ReviewCluster& c = mutable_cluster(id);
  std::vector<int> same;
  for (const auto& o : clusters_)
    if (o.id != id && o.name == new_name) same.push_back(o.id);
  const std::string old = person_ref(c);
  c.name = new_name;
  rename_constraints(old, new_name);
  for (const int o : same) merge(id, o);
}

void ClusterReview::merge(int into, int from) {
  if (into == from) throw Error(ErrorCode::kInvalidArgument, "a cluster cannot be merged with itself");
  ReviewCluster& a = mutable_cluster(into);
  ReviewCluster& b = mutable_cluster(from);
  if (!a.name.empty() && !b.name.empty() && a.name != b.name)
    throw Error(ErrorCode::kInvalidArgument, "clusters " + std::to_string(into) + " (" + a.name + ") and " +
                                                 std::to_string(from) + " (" + b.name + ") are named as different people");
  if (a.name.empty()) a.name = b.name;
  const std::string from_ref = person_ref(b), into_ref = person_ref(a);
  for (auto& f : b.faces) a.faces.push_back(std::move(f));
  std::erase_if(clusters_, [&](const ReviewCluster& c) { return c.id == from; });
  rename_constraints(from_ref, into_ref);
  rename_constraints("#" + std::to_string(into), into_ref);
  // A face said not to be this person cannot stay in it.
  ReviewCluster& m = mutable_cluster(into);
  for (const auto& n : not_)
    if (n.person == into_ref) move_out(m.faces, n.face, unclustered_);
}

std::vector<int> ClusterReview::split(int id, const std::vector<std::string>& keys, const LibraryScan* scan,
                                      const ClusterOptions& o) {
  ReviewCluster& c = mutable_cluster(id);
  if (c.faces.size() < 2) throw Error(ErrorCode::kInvalidArgument, "cluster " + std::to_string(id) + " has one face: nothing to split");
  std::vector<int> part(c.faces.size(), 0);  // 0 stays; k > 0 -> the k-th new cluster; -1 unclustered
  if (!keys.empty()) {
    for (const auto& k : keys) {
      const auto it = std::find_if(c.faces.begin(), c.faces.end(), [&](const ReviewFace& f) { return f.key() == k; });
      if (it == c.faces.end()) throw Error(ErrorCode::kInvalidArgument, "face " + k + " is not in cluster " + std::to_string(id));
      part[static_cast<size_t>(it - c.faces.begin())] = 1;
    }
    if (std::count(part.begin(), part.end(), 1) == static_cast<long>(part.size()))
      throw Error(ErrorCode::kInvalidArgument, "every face of cluster " + std::to_string(id) + " was listed: nothing would stay");
  } else {
    if (!scan) throw Error(ErrorCode::kInvalidArgument, "splitting without a list of faces needs their embeddings");
    const auto at = index_keys(*scan);
    std::vector<Embedding> e;
    std::vector<int> photo;
    for (const auto& f : c.faces) {
      const LibraryFace& lf = face_in(*scan, at, f.key());
      e.push_back(lf.embedding);
      photo.push_back(lf.photo);
    }
    ClusterOptions so = o;
    so.method = ClusterMethod::kAgglomerative;
    so.min_cluster_size = 1;
    // Lower the bar until the cluster falls apart: the weakest join of its average linkage goes first.
    ClusterResult r;
    for (so.threshold = std::min(2.f, o.threshold); so.threshold > 0.01f; so.threshold *= 0.9f) {
      r = cluster_faces(e, photo, so);
      if (r.clusters > 1) break;
    }
    if (r.clusters <= 1) throw Error(ErrorCode::kInvalidArgument, "cluster " + std::to_string(id) + " does not fall apart");
    std::vector<int> size(static_cast<size_t>(r.clusters), 0);
    for (const int l : r.label) size[static_cast<size_t>(l)]++;
    // Label 0 is the largest part (cluster_faces orders them): it stays.
    for (size_t i = 0; i < part.size(); ++i) {
      const int l = r.label[i];
      part[i] = l == 0 ? 0 : (size[static_cast<size_t>(l)] >= 2 ? l : -1);
    }
  }
  std::map<int, ReviewCluster> made;
  std::vector<ReviewFace> stay;
  for (size_t i = 0; i < part.size(); ++i) {
    if (part[i] == 0) stay.push_back(c.faces[i]);
    else if (part[i] < 0) unclustered_.push_back(c.faces[i]);
    else made[part[i]].faces.push_back(c.faces[i]);
  }
  c.faces = std::move(stay);
  std::vector<int> ids;
  for (auto& [k, m] : made) {
    m.id = next_id_++;
    ids.push_back(m.id);
    clusters_.push_back(std::move(m));
  }
  return ids;
}

void ClusterReview::not_same(const std::string& key, const std::string& person) {
  bool found = std::any_of(unclustered_.begin(), unclustered_.end(), [&](const ReviewFace& f) { return f.key() == key; });
  for (const auto& c : clusters_)
    for (const auto& f : c.faces) found = found || f.key() == key;
  if (!found) throw Error(ErrorCode::kNotFound, "no face " + key + " in this library (keys are PHOTO#K, as the state lists them)");
  std::string ref = person;
  if (parse_id(person) >= 0) {
    ref = person_ref(cluster(parse_id(person)));
  } else {
    check_person_name(person);
  }
  if (std::none_of(not_.begin(), not_.end(), [&](const NotSame& n) { return n.face == key && n.person == ref; }))
    not_.push_back({key, ref});
  for (auto& c : clusters_)
    if (person_ref(c) == ref) move_out(c.faces, key, unclustered_);
  std::erase_if(clusters_, [](const ReviewCluster& c) { return c.faces.empty(); });
}

AddResult enrol_cluster(Gallery& gallery, const EmbedderId& embedder, const ReviewCluster& c, const LibraryScan& scan) {
  if (c.name.empty()) throw Error(ErrorCode::kInvalidArgument, "cluster " + std::to_string(c.id) + " has no name to enrol it under");
  const auto at = index_keys(scan);
  NewPerson p;
  p.name = c.name;
  std::unordered_map<std::string, std::string> sha;  // photo -> its hash, each photo read once
  for (const auto& f : c.faces) {
    const LibraryFace& lf = face_in(scan, at, f.key());
    auto [it, fresh] = sha.emplace(f.photo, "");
    if (fresh) it->second = sha256_file(f.photo);
    NewTemplate t;
    t.embedder = embedder;
    t.embedding = lf.embedding;
    t.quality = lf.face.score;
    t.source_sha256 = it->second;
    p.templates.push_back(std::move(t));
  }
  return gallery.add_person(p, OnConflict::kMerge);
}

bool unenrol_face(Gallery& gallery, const std::string& person, const std::string& key, const LibraryScan& scan) {
  const auto who = gallery.find_person(person);
  if (!who) return false;
  const auto at = index_keys(scan);
  const LibraryFace& lf = face_in(scan, at, key);
  const auto same = [&](const Embedding& x) {
    if (x.size() != lf.embedding.size()) return false;
    for (size_t k = 0; k < x.size(); ++k)
      if (std::abs(x[k] - lf.embedding[k]) > 1e-6f) return false;
    return true;
  };
  for (const auto& t : gallery.templates_of(who->id))
    if (same(t.embedding)) {
      gallery.remove_template(t.id);
      return true;
    }
  return false;
}

}  // namespace facekit
