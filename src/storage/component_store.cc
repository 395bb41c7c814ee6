#include "storage/component_store.h"

#include "storage/internal/sqlite.h"

namespace nodata::storage {

namespace {

using internal::Statement;

constexpr std::string_view kNoun = "component";

}  // namespace

absl::Status ComponentStore::Create(const ComponentRow& row) {
  return internal::InsertNamed(
      db_, kNoun, row.name,
      "INSERT INTO components (name, kind, spec, module_sha256, created_at_us, "
      "updated_at_us) VALUES (?, ?, ?, ?, ?, ?)",
      [&row](Statement& st) {
        st.BindText(1, row.name);
        st.BindText(2, row.kind);
        st.BindText(3, row.spec);
        st.BindText(4, row.module_sha256);
        st.BindInt(5, row.created_at_us);
        st.BindInt(6, row.updated_at_us);
      });
}

absl::Status ComponentStore::Update(const ComponentRow& row) {
  return internal::ChangeNamed(
      db_, kNoun, row.name,
      "UPDATE components SET spec = ?, module_sha256 = ?, updated_at_us = ? WHERE name = ?",
      [&row](Statement& st) {
        st.BindText(1, row.spec);
        st.BindText(2, row.module_sha256);
        st.BindInt(3, row.updated_at_us);
        st.BindText(4, row.name);
      });
}

absl::Status ComponentStore::Delete(std::string_view name) {
  return internal::ChangeNamed(db_, kNoun, name, "DELETE FROM components WHERE name = ?",
                               [name](Statement& st) { st.BindText(1, name); });
}

absl::StatusOr<std::vector<ComponentRow>> ComponentStore::List() {
  std::vector<ComponentRow> out;
  absl::Status s = internal::ForEachRow(
      db_, "list components",
      "SELECT name, kind, spec, module_sha256, created_at_us, updated_at_us "
      "FROM components ORDER BY name",
      [&out](Statement& st) {
        out.push_back(ComponentRow{st.ColumnText(0), st.ColumnText(1), st.ColumnText(2),
                                   st.ColumnText(3), st.ColumnInt(4), st.ColumnInt(5)});
      });
  if (!s.ok()) return s;
  return out;
}

}  // namespace nodata::storage
