// compare_galleries: the check behind `facekit gallery copy`: a copy holds the same people and templates and
// answers every probe as the original does.
#include <cmath>
#include <map>

#include "facekit/error.hpp"
#include "facekit/identify.hpp"

namespace facekit {

GalleryComparison compare_galleries(const Gallery& a, const Gallery& b, int probes) {
  GalleryComparison c;
  const GalleryStats sa = a.stats(), sb = b.stats();
  c.people_a = sa.people, c.people_b = sb.people, c.templates_a = sa.templates, c.templates_b = sb.templates;
  if (sa.people != sb.people) c.problems.push_back("people: " + std::to_string(sa.people) + " vs " + std::to_string(sb.people));
  if (sa.templates_by_embedder != sb.templates_by_embedder) c.problems.push_back("templates per embedder differ");
  std::map<std::string, Person> in_b;
  for (auto& p : b.people()) in_b.emplace(p.name, p);
  for (const auto& p : a.people()) {
    const auto it = in_b.find(p.name);
    if (it == in_b.end()) {
      c.problems.push_back("'" + p.name + "' is missing");
    } else if (it->second.metadata != p.metadata || it->second.templates != p.templates) {
      c.problems.push_back("'" + p.name + "' differs (metadata or template count)");
    }
  }
  IdentifyOptions o;
  o.classifier = "knn";
  o.use_cache = false;
  o.threshold = 0.f;
  o.index.kind = "flat";  // exact: HNSW graphs built twice differ (threads race), and so would their answers
  for (const auto& [embedder, n] : sa.templates_by_embedder) {
    if (!sb.templates_by_embedder.count(embedder)) continue;
    const Identifier ia(a, embedder, o), ib(b, embedder, o);
    const std::int64_t step = std::max<std::int64_t>(1, n / std::max(1, probes));
    std::int64_t i = 0;
    std::vector<Embedding> sample;
    a.for_each_template(embedder, [&](const Template& t) {
      if (i++ % step == 0 && static_cast<int>(sample.size()) < probes) sample.push_back(t.embedding);
    });
    for (const auto& e : sample) {
      ++c.probes;
      const auto ra = ia.identify(e), rb = ib.identify(e);
      bool same = ra.candidates.size() == rb.candidates.size();
      for (size_t k = 0; same && k < ra.candidates.size(); ++k)
        same = ra.candidates[k].name == rb.candidates[k].name &&
               std::abs(ra.candidates[k].score - rb.candidates[k].score) <= 1e-5f;
      if (!same) {
        ++c.different;
        const auto list = [](const Identification& r) {
          std::string s;
          for (const auto& cd : r.candidates) s += (s.empty() ? "" : ", ") + cd.name + " " + std::to_string(cd.score);
          return s.empty() ? std::string("nobody") : s;
        };
        if (c.different <= 5)
          c.problems.push_back(embedder.str() + ": a probe is answered [" + list(ra) + "] by one and [" + list(rb) +
                               "] by the other");
      }
    }
  }
  return c;
}

}  // namespace facekit
