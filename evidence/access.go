package evidence

import "slices"

// Who may read and change what. These are the rules of the roles (see
// users.go); the API and ingest both apply them, so they live here once.

// MayReadFootage reports whether u may read footage recorded by the officer
// with id officer, who belongs to officerUnit (the caller looks the unit up;
// it matters only to supervisors). Auditors read everything; officers their
// own footage; supervisors their unit's, or every unit's when they have no
// unit (a duty supervisor). Admins run the system and read none.
func MayReadFootage(u User, officer, officerUnit string) bool {
	switch u.Role {
	case RoleAuditor:
		return true
	case RoleOfficer:
		return officer != "" && officer == u.ID
	case RoleSupervisor:
		return u.Unit == "" || (officer != "" && officer == u.ID) || (officer != "" && officerUnit != "" && officerUnit == u.Unit)
	}
	return false
}

// MayReadCase: auditors every case, officers the cases they are on,
// supervisors their unit's (or every unit's without one) and those they
// are on.
func MayReadCase(u User, c Case) bool {
	switch u.Role {
	case RoleAuditor:
		return true
	case RoleOfficer:
		return slices.Contains(c.Members, u.ID)
	case RoleSupervisor:
		return u.Unit == "" || u.Unit == c.Unit || slices.Contains(c.Members, u.ID)
	}
	return false
}

// MayChangeCase: those who may read it, but never auditors (they change
// nothing) or disabled users.
func MayChangeCase(u User, c Case) bool {
	return !u.Disabled && u.Role != RoleAuditor && MayReadCase(u, c)
}

// TakesEvidence reports whether footage may be linked to a case in state s:
// not once it is closed or archived.
func (s CaseState) TakesEvidence() bool {
	return s != CaseClosed && s != CaseArchived
}

// EvidenceSettled reports whether a case's evidence may no longer be
// unlinked: once it is decided, what it was decided on stays (and stays on
// legal hold).
func (s CaseState) EvidenceSettled() bool {
	return s == CaseDecided || s == CaseClosed || s == CaseArchived
}

// InCaseRecord reports whether custody event e is shown in the record of
// case caseID (its custody excerpt, in the API and in court exports), given
// the case's evidence links, removed ones included. Shown: the case's own
// events; and events about a recording linked to the case while it was
// linked (from the link to its removal), plus the recording's ingest (its
// origin), unless they belong to another case. Links, unlinks and holds are
// shown only as the case's own (refused attempts name no case: another
// case's attempt to take the footage is not this case's story). Everything
// else reaches the excerpt only as digests, so that a case's readers do not
// read other cases' notes or what happened to footage after it left their
// case.
func InCaseRecord(e CustodyEvent, caseID string, links []EvidenceLink) bool {
	if e.CaseID != "" {
		return e.CaseID == caseID
	}
	switch {
	case e.TargetKind != "recording", e.Action == ActionLink, e.Action == ActionUnlink, e.Action == ActionHold:
		return false
	}
	for _, l := range links {
		if l.CaseID != caseID || l.RecordingID != e.TargetID {
			continue
		}
		if e.Action == ActionIngest {
			return true
		}
		if !e.At.Before(l.LinkedAt) && (l.Active() || !e.At.After(l.UnlinkedAt)) {
			return true
		}
	}
	return false
}
