"""The directory's tables (SQLAlchemy Core), shared by the store and the FHIR queries.

- ``dir_practitioners``, ``dir_organisations``: the referential, keyed by idNatPs and
  idNatSt; ``*_norm`` columns hold ``text.joined`` forms (lower case, no accents,
  words separated by one space) for FHIR string searches (an organisation's ``name``
  is its raison sociale or its enseigne: ``name_norm`` and ``trade_norm``), indexed
  with byte order (collation "C" on PostgreSQL) so that a prefix is a range
  ``>= p AND < p || '\\uffff'``.
- ``dir_roles``: a professional at an organisation.
- ``dir_mailboxes``: one row per mailbox. It keeps the 31 values of the extract row
  exactly (denormalised: export is a plain SELECT and an import followed by an
  export gives the same file), the links to the referential (each indexed with the
  type and the liste rouge: what the FHIR queries ask of a holder's mailboxes), the
  publication metadata (description, responsible, liste rouge, publisher) and what the
  people search needs (``search_text``, ``family_key``, see ``text.spaced``). ``row_hash``
  is a digest of the 31 values, to tell a changed row from an unchanged one on import.
- ``dir_mailbox_trigrams`` and ``dir_organisation_trigrams`` (SQLite, not in
  ``metadata``): FTS5 tables with the ``trigram`` tokenizer over the addresses (rowid
  = mailbox id) and over the organisations' two names (rowid = organisation id), for
  substring searches of three characters or more. On PostgreSQL ``pg_trgm`` GIN
  indexes on ``dir_mailboxes.address`` and on the names (``family_norm``,
  ``given_norm``, ``name_norm``, ``trade_norm``) play that part. The store creates them
  when the database can (``store._create_schema``); without them a substring search
  scans (on SQLite, a professional's names are read from an index covering them).
- ``dir_state`` (one row) and ``dir_changes``: the search index's change feed. An
  import bumps ``epoch`` (the index is rebuilt); a publication appends the ids of the
  mailboxes it touched to ``dir_changes`` (the index applies them).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from mssante.directory.extract import FIELD_NAMES

metadata = MetaData()

# Byte-order comparison on both engines (SQLite's default BINARY collation).
Key = Text().with_variant(Text(collation="C"), "postgresql")

schema_version = Table(
    "directory_schema_version", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
)

practitioners = Table(
    "dir_practitioners", metadata,
    Column("id", Integer, primary_key=True),
    Column("id_nat_ps", Key, nullable=False),
    Column("id_type", Text, nullable=False),
    Column("pp_id", Key, nullable=False),
    Column("civility", Text, nullable=False),
    Column("family_name", Text, nullable=False),
    Column("given_name", Text, nullable=False),
    Column("profession_category", Text, nullable=False),
    Column("profession_category_label", Text, nullable=False),
    Column("profession_code", Text, nullable=False),
    Column("profession_label", Text, nullable=False),
    Column("skill_code", Text, nullable=False),
    Column("skill_label", Text, nullable=False),
    Column("family_norm", Key, nullable=False),
    Column("given_norm", Key, nullable=False),
    UniqueConstraint("id_nat_ps", name="uq_dir_practitioners_id_nat_ps"),
    Index("ix_dir_practitioners_pp_id", "pp_id"),
    # family_norm first: the family's prefix; given_norm too: a substring test of
    # family or given name reads this index alone (SQLite; PostgreSQL: trigrams).
    Index("ix_dir_practitioners_names", "family_norm", "given_norm"),
    Index("ix_dir_practitioners_given_norm", "given_norm"),
)

organisations = Table(
    "dir_organisations", metadata,
    Column("id", Integer, primary_key=True),
    Column("id_nat_st", Key, nullable=False),
    Column("id_type", Text, nullable=False),
    Column("legal_name", Text, nullable=False),
    Column("trade_name", Text, nullable=False),
    Column("location_complement", Text, nullable=False),
    Column("distribution_complement", Text, nullable=False),
    Column("street_number", Text, nullable=False),
    Column("street_number_complement", Text, nullable=False),
    Column("street_type", Text, nullable=False),
    Column("street_name", Text, nullable=False),
    Column("locality", Text, nullable=False),
    Column("routing_line", Text, nullable=False),
    Column("postal_code", Key, nullable=False),
    Column("department", Text, nullable=False),
    Column("country", Text, nullable=False),
    Column("name_norm", Key, nullable=False),  # joined(legal_name)
    Column("city_norm", Key, nullable=False),  # joined(Organisation.city)
    Column("trade_norm", Key, nullable=False),  # joined(trade_name)
    UniqueConstraint("id_nat_st", name="uq_dir_organisations_id_nat_st"),
    Index("ix_dir_organisations_names", "name_norm", "trade_norm"),  # the same
    Index("ix_dir_organisations_trade_norm", "trade_norm"),
    Index("ix_dir_organisations_city_norm", "city_norm"),
    Index("ix_dir_organisations_postal_code", "postal_code"),
)

roles = Table(
    "dir_roles", metadata,
    Column("id", Integer, primary_key=True),
    Column("practitioner_id", Integer,
           ForeignKey("dir_practitioners.id", ondelete="CASCADE"), nullable=False),
    Column("organisation_id", Integer,
           ForeignKey("dir_organisations.id", ondelete="CASCADE"), nullable=False),
    UniqueConstraint("practitioner_id", "organisation_id", name="uq_dir_roles_pair"),
    Index("ix_dir_roles_organisation", "organisation_id"),
)

mailboxes = Table(
    "dir_mailboxes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    *(Column(name, Boolean if name == "digitization" else Key if name == "address" else Text,
             nullable=False) for name in FIELD_NAMES),
    Column("practitioner_id", Integer,
           ForeignKey("dir_practitioners.id", ondelete="SET NULL")),
    Column("organisation_id", Integer,
           ForeignKey("dir_organisations.id", ondelete="SET NULL")),
    Column("description", Text, nullable=False, server_default=""),
    Column("responsible", Text, nullable=False, server_default=""),
    Column("liste_rouge", Boolean, nullable=False, server_default="0"),
    Column("publisher", Text, nullable=False, server_default=""),
    Column("updated_at", Double, nullable=False),
    Column("search_text", Text, nullable=False),
    Column("family_key", Text, nullable=False),
    Column("row_hash", String(32), nullable=False),
    UniqueConstraint("address", name="uq_dir_mailboxes_address"),
    Index("ix_dir_mailboxes_practitioner_type", "practitioner_id", "mailbox_type",
          "liste_rouge"),
    Index("ix_dir_mailboxes_organisation_type", "organisation_id", "mailbox_type",
          "liste_rouge"),
)

# Indexes of earlier databases that those above replace (dropped on open).
REPLACED_INDEXES = ("ix_dir_mailboxes_practitioner", "ix_dir_mailboxes_organisation",
                    "ix_dir_practitioners_family_norm", "ix_dir_organisations_name_norm")

# The trigram tables (SQLite FTS5, see the module docstring), declared here for the
# statements that use them (``metadata`` would create ordinary tables).
_fts = MetaData()
mailbox_trigrams = Table(
    "dir_mailbox_trigrams", _fts,
    Column("rowid", Integer, primary_key=True),  # dir_mailboxes.id
    Column("address", Text, nullable=False),
)
organisation_trigrams = Table(
    "dir_organisation_trigrams", _fts,
    Column("rowid", Integer, primary_key=True),  # dir_organisations.id
    Column("names", Text, nullable=False),  # name_norm NAMES_SEPARATOR trade_norm
)
NAMES_SEPARATOR = "|"  # never in a *_norm value

state = Table(
    "dir_state", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("epoch", Integer, nullable=False),
)

changes = Table(
    "dir_changes", metadata,
    Column("seq", Integer, primary_key=True),
    Column("mailbox_id", Integer, nullable=False),
    Column("epoch", Integer, nullable=False),
)
