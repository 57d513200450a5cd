#pragma once
// What every gallery store does the same way before it writes: checking the people and metadata it is given,
// making ids and times. Internal to the library.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "facekit/gallery.hpp"

namespace facekit::detail {

/// `text` parsed as a JSON object ("" is {}); throws Error(kInvalidArgument) for anything else.
nlohmann::json parse_metadata(const std::string& text);

/// add_people's input, checked before a store begins a transaction.
struct CheckedPeople {
  std::vector<nlohmann::json> metadata;   ///< one per person, parsed
  std::map<EmbedderId, size_t> dims;      ///< the embedding length of every embedder in the batch
};
/// Throws Error(kInvalidArgument) for an invalid name or metadata, a person without templates, a template without
/// embedder, an empty, non-finite or non-unit embedding, or one embedder's embeddings differing in length.
CheckedPeople check_new_people(const std::vector<NewPerson>& people);

std::string random_uuid();
std::int64_t now_seconds();

}  // namespace facekit::detail
