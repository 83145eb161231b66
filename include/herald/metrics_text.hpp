#pragma once

#include <herald/config.hpp>
#include <herald/detail/decimal.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::inline v0 {

/** The Prometheus text exposition format (0.0.4), as herald::Metrics writes it and a
    Metrics::Source adds to it: every family's `# HELP` and `# TYPE` once, then all its samples
    together, whichever source wrote them (the format forbids a family split in two). Label
    values are escaped (backslash, quote, newline), so no channel path or reason can break a
    line or forge a sample. */
class MetricsText {
 public:
  using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

  /// Select family `name` (created on first use) for the samples that follow.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    for (std::size_t i = 0; i < families_.size(); ++i)
      if (families_[i].name == name) return void(current_ = i);
    families_.push_back({std::string(name), std::string(type), std::string(help), {}});
    current_ = families_.size() - 1;
  }

  /// One sample of the selected family.
  void sample(Labels labels, std::uint64_t value) {
    auto& f = families_.at(current_);
    f.samples += f.name;
    if (labels.size() != 0) {
      f.samples += '{';
      bool first = true;
      for (auto const& [k, v] : labels) {
        if (!first) f.samples += ',';
        first = false;
        f.samples += k;
        f.samples += "=\"";
        append_escaped(f.samples, v);
        f.samples += '"';
      }
      f.samples += '}';
    }
    f.samples += ' ';
    detail::append_decimal(f.samples, value);
    f.samples += '\n';
  }

  /// The exposition: families in the order they were first selected.
  std::string str() const {
    std::string out;
    for (auto const& f : families_) {
      out += "# HELP ";
      out += f.name;
      out += ' ';
      out += f.help;
      out += "\n# TYPE ";
      out += f.name;
      out += ' ';
      out += f.type;
      out += '\n';
      out += f.samples;
    }
    return out;
  }

 private:
  struct Family {
    std::string name;
    std::string type;
    std::string help;
    std::string samples;
  };

  static void append_escaped(std::string& out, std::string_view v) {
    for (char c : v) {
      if (c == '\\') out += "\\\\";
      else if (c == '"') out += "\\\"";
      else if (c == '\n') out += "\\n";
      else out += c;
    }
  }

  std::vector<Family> families_;
  std::size_t current_ = 0;
};

}  // namespace herald
