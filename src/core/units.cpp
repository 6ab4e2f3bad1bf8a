#include "units.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

namespace pgm {

namespace {

struct UnitDef {
    const char* usage_key;
    const char* price_key;
    int64_t per;
    std::vector<std::pair<std::string, std::string>> dims;
};

// The genai-prices unit taxonomy (usage key, price key, per, dimensions),
// followed by pg_meter's own meters.
const std::vector<UnitDef>& defs() {
    static const std::vector<UnitDef> d = {
        {"audio_seconds", "audio_hours", 3600, {{"family", "durations"}, {"modality", "audio"}}},
        {"cache_audio_read_tokens",
         "cache_audio_read_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"modality", "audio"}, {"token_type", "cache_read"}}},
        {"cache_audio_write_1h_tokens",
         "cache_audio_write_1h_mtok",
         1000000,
         {{"cache_ttl", "1h"},
          {"direction", "input"},
          {"family", "tokens"},
          {"modality", "audio"},
          {"token_type", "cache_write"}}},
        {"cache_audio_write_5m_tokens",
         "cache_audio_write_5m_mtok",
         1000000,
         {{"cache_ttl", "5m"},
          {"direction", "input"},
          {"family", "tokens"},
          {"modality", "audio"},
          {"token_type", "cache_write"}}},
        {"cache_audio_write_tokens",
         "cache_audio_write_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"modality", "audio"}, {"token_type", "cache_write"}}},
        {"cache_image_read_tokens",
         "cache_image_read_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"modality", "image"}, {"token_type", "cache_read"}}},
        {"cache_image_write_1h_tokens",
         "cache_image_write_1h_mtok",
         1000000,
         {{"cache_ttl", "1h"},
          {"direction", "input"},
          {"family", "tokens"},
          {"modality", "image"},
          {"token_type", "cache_write"}}},
        {"cache_image_write_5m_tokens",
         "cache_image_write_5m_mtok",
         1000000,
         {{"cache_ttl", "5m"},
          {"direction", "input"},
          {"family", "tokens"},
          {"modality", "image"},
          {"token_type", "cache_write"}}},
        {"cache_image_write_tokens",
         "cache_image_write_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"modality", "image"}, {"token_type", "cache_write"}}},
        {"cache_read_tokens",
         "cache_read_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"token_type", "cache_read"}}},
        {"cache_text_read_tokens",
         "cache_text_read_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"modality", "text"}, {"token_type", "cache_read"}}},
        {"cache_text_write_1h_tokens",
         "cache_text_write_1h_mtok",
         1000000,
         {{"cache_ttl", "1h"},
          {"direction", "input"},
          {"family", "tokens"},
          {"modality", "text"},
          {"token_type", "cache_write"}}},
        {"cache_text_write_5m_tokens",
         "cache_text_write_5m_mtok",
         1000000,
         {{"cache_ttl", "5m"},
          {"direction", "input"},
          {"family", "tokens"},
          {"modality", "text"},
          {"token_type", "cache_write"}}},
        {"cache_text_write_tokens",
         "cache_text_write_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"modality", "text"}, {"token_type", "cache_write"}}},
        {"cache_video_read_tokens",
         "cache_video_read_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"modality", "video"}, {"token_type", "cache_read"}}},
        {"cache_video_write_1h_tokens",
         "cache_video_write_1h_mtok",
         1000000,
         {{"cache_ttl", "1h"},
          {"direction", "input"},
          {"family", "tokens"},
          {"modality", "video"},
          {"token_type", "cache_write"}}},
        {"cache_video_write_5m_tokens",
         "cache_video_write_5m_mtok",
         1000000,
         {{"cache_ttl", "5m"},
          {"direction", "input"},
          {"family", "tokens"},
          {"modality", "video"},
          {"token_type", "cache_write"}}},
        {"cache_video_write_tokens",
         "cache_video_write_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"modality", "video"}, {"token_type", "cache_write"}}},
        {"cache_write_1h_tokens",
         "cache_write_1h_mtok",
         1000000,
         {{"cache_ttl", "1h"}, {"direction", "input"}, {"family", "tokens"}, {"token_type", "cache_write"}}},
        {"cache_write_5m_tokens",
         "cache_write_5m_mtok",
         1000000,
         {{"cache_ttl", "5m"}, {"direction", "input"}, {"family", "tokens"}, {"token_type", "cache_write"}}},
        {"cache_write_tokens",
         "cache_write_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"token_type", "cache_write"}}},
        {"code_executions",
         "code_executions_kcount",
         1000,
         {{"family", "tool_calls"}, {"tool_type", "code_execution"}}},
        {"input_annotated_document_pages",
         "input_annotated_document_kpages",
         1000,
         {{"direction", "input"}, {"family", "document_pages"}, {"page_type", "annotated"}}},
        {"input_audio_seconds",
         "input_audio_hours",
         3600,
         {{"direction", "input"}, {"family", "durations"}, {"modality", "audio"}}},
        {"input_audio_tokens",
         "input_audio_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"modality", "audio"}}},
        {"input_audio_tool_tokens",
         "input_audio_tool_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"modality", "audio"}, {"token_type", "tool"}}},
        {"input_characters", "input_mchars", 1000000, {{"direction", "input"}, {"family", "characters"}}},
        {"input_document_pages", "input_document_kpages", 1000, {{"direction", "input"}, {"family", "document_pages"}}},
        {"input_image_tokens",
         "input_image_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"modality", "image"}}},
        {"input_image_tool_tokens",
         "input_image_tool_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"modality", "image"}, {"token_type", "tool"}}},
        {"input_pixels", "input_gpixels", 1000000000, {{"direction", "input"}, {"family", "pixels"}}},
        {"input_text_messages",
         "input_text_messages_kcount",
         1000,
         {{"direction", "input"}, {"family", "messages"}, {"modality", "text"}}},
        {"input_text_tokens",
         "input_text_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"modality", "text"}}},
        {"input_text_tool_tokens",
         "input_text_tool_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"modality", "text"}, {"token_type", "tool"}}},
        {"input_tokens", "input_mtok", 1000000, {{"direction", "input"}, {"family", "tokens"}}},
        {"input_tool_tokens",
         "input_tool_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"token_type", "tool"}}},
        {"input_video_tokens",
         "input_video_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"modality", "video"}}},
        {"input_video_tool_tokens",
         "input_video_tool_mtok",
         1000000,
         {{"direction", "input"}, {"family", "tokens"}, {"modality", "video"}, {"token_type", "tool"}}},
        {"output_audio_citation_tokens",
         "output_audio_citation_mtok",
         1000000,
         {{"direction", "output"}, {"family", "tokens"}, {"modality", "audio"}, {"token_type", "citation"}}},
        {"output_audio_reasoning_tokens",
         "output_audio_reasoning_mtok",
         1000000,
         {{"direction", "output"}, {"family", "tokens"}, {"modality", "audio"}, {"token_type", "reasoning"}}},
        {"output_audio_seconds",
         "output_audio_hours",
         3600,
         {{"direction", "output"}, {"family", "durations"}, {"modality", "audio"}}},
        {"output_audio_tokens",
         "output_audio_mtok",
         1000000,
         {{"direction", "output"}, {"family", "tokens"}, {"modality", "audio"}}},
        {"output_citation_tokens",
         "output_citation_mtok",
         1000000,
         {{"direction", "output"}, {"family", "tokens"}, {"token_type", "citation"}}},
        {"output_image_citation_tokens",
         "output_image_citation_mtok",
         1000000,
         {{"direction", "output"}, {"family", "tokens"}, {"modality", "image"}, {"token_type", "citation"}}},
        {"output_image_reasoning_tokens",
         "output_image_reasoning_mtok",
         1000000,
         {{"direction", "output"}, {"family", "tokens"}, {"modality", "image"}, {"token_type", "reasoning"}}},
        {"output_image_tokens",
         "output_image_mtok",
         1000000,
         {{"direction", "output"}, {"family", "tokens"}, {"modality", "image"}}},
        {"output_reasoning_tokens",
         "output_reasoning_mtok",
         1000000,
         {{"direction", "output"}, {"family", "tokens"}, {"token_type", "reasoning"}}},
        {"output_text_citation_tokens",
         "output_text_citation_mtok",
         1000000,
         {{"direction", "output"}, {"family", "tokens"}, {"modality", "text"}, {"token_type", "citation"}}},
        {"output_text_reasoning_tokens",
         "output_text_reasoning_mtok",
         1000000,
         {{"direction", "output"}, {"family", "tokens"}, {"modality", "text"}, {"token_type", "reasoning"}}},
        {"output_text_tokens",
         "output_text_mtok",
         1000000,
         {{"direction", "output"}, {"family", "tokens"}, {"modality", "text"}}},
        {"output_tokens", "output_mtok", 1000000, {{"direction", "output"}, {"family", "tokens"}}},
        {"output_video_citation_tokens",
         "output_video_citation_mtok",
         1000000,
         {{"direction", "output"}, {"family", "tokens"}, {"modality", "video"}, {"token_type", "citation"}}},
        {"output_video_reasoning_tokens",
         "output_video_reasoning_mtok",
         1000000,
         {{"direction", "output"}, {"family", "tokens"}, {"modality", "video"}, {"token_type", "reasoning"}}},
        {"output_video_tokens",
         "output_video_mtok",
         1000000,
         {{"direction", "output"}, {"family", "tokens"}, {"modality", "video"}}},
        {"requests", "requests_kcount", 1000, {{"family", "requests"}}},
        {"rerank_searches", "rerank_searches_kcount", 1000, {{"family", "rerank"}}},
        {"social_searches", "social_searches_kcount", 1000, {{"family", "tool_calls"}, {"tool_type", "social_search"}}},
        {"storage_searches",
         "storage_searches_kcount",
         1000,
         {{"family", "tool_calls"}, {"tool_type", "storage_search"}}},
        {"web_searches", "web_searches_kcount", 1000, {{"family", "tool_calls"}, {"tool_type", "web_search"}}},
        // pg_meter's own: generated images and seconds of compute, priced each.
        {"images", "per_image", 1, {{"direction", "output"}, {"family", "images"}}},
        {"compute_seconds", "per_compute_second", 1, {{"family", "compute"}}},
    };
    return d;
}

bool subset(const Unit& a, const Unit& b) {  // a.dims within b.dims
    for (auto& [k, v] : a.dims) {
        auto it = std::find_if(b.dims.begin(), b.dims.end(), [&](auto& p) { return p.first == k; });
        if (it == b.dims.end() || it->second != v) return false;
    }
    return true;
}

bool no_conflict(const Unit& x, const Unit& y) {
    for (auto& [k, v] : x.dims)
        for (auto& [k2, v2] : y.dims)
            if (k == k2 && v != v2) return false;
    return true;
}

}  // namespace

std::string Unit::direction() const {
    for (auto& [k, v] : dims)
        if (k == "direction") return v;
    return {};
}

bool Unit::is_token_count() const {
    for (auto& [k, v] : dims)
        if (k == "family") return v != "durations" && v != "compute";
    return true;
}

const Units& Units::get() {
    static const Units u;
    return u;
}

Units::Units() {
    for (auto& d : defs()) {
        Unit u;
        u.usage_key = d.usage_key;
        u.price_key = d.price_key;
        u.per = d.per;
        u.dims = d.dims;
        std::sort(u.dims.begin(), u.dims.end());
        u.index = static_cast<int>(units_.size());
        units_.push_back(std::move(u));
    }
    if (units_.size() > kMaxUnits) throw std::logic_error("too many units");
    std::map<std::vector<std::pair<std::string, std::string>>, int> by_dims;
    for (auto& u : units_)
        by_dims[u.dims] = u.index;
    for (auto& u : units_) {
        std::string d = u.direction();
        u.dir = d == "input" ? 1 : d == "output" ? 2 : 0;
        for (auto& o : units_) {
            if (o.index != u.index && subset(o, u)) u.ancestors.set(static_cast<size_t>(o.index));
            if (o.index != u.index && subset(u, o)) u.descendants.set(static_cast<size_t>(o.index));
            if (no_conflict(u, o)) u.compatible.set(static_cast<size_t>(o.index));
        }
    }
    size_t n = units_.size();
    join_.assign(n * n, -1);
    for (auto& a : units_)
        for (auto& b : units_) {
            if (!compatible(a.index, b.index)) continue;
            auto merged = a.dims;
            for (auto& p : b.dims)
                if (std::find(merged.begin(), merged.end(), p) == merged.end()) merged.push_back(p);
            std::sort(merged.begin(), merged.end());
            auto it = by_dims.find(merged);
            join_[static_cast<size_t>(a.index) * n + static_cast<size_t>(b.index)] =
                it == by_dims.end() ? -1 : it->second;
        }
    for (auto& u : units_) {
        by_usage_.emplace_back(u.usage_key, u.index);
        by_price_.emplace_back(u.price_key, u.index);
    }
    std::sort(by_usage_.begin(), by_usage_.end());
    std::sort(by_price_.begin(), by_price_.end());
    input_tokens_ = by_usage_key("input_tokens");
    requests_ = by_usage_key("requests");
}

static int find_sorted(const std::vector<std::pair<std::string, int>>& v, std::string_view k) {
    auto it =
        std::lower_bound(v.begin(), v.end(), k, [](const auto& p, std::string_view key) { return p.first < key; });
    return it != v.end() && it->first == k ? it->second : -1;
}

int Units::by_usage_key(std::string_view k) const { return find_sorted(by_usage_, k); }
int Units::by_price_key(std::string_view k) const { return find_sorted(by_price_, k); }

}  // namespace pgm
