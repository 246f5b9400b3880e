package tenancy

// Condition of a MetricAccess's status that flags `=` values which look like
// regular expressions: they are in force, literally, which is rarely what
// their author meant.
const (
	ConditionWarning       = "Warning"
	ReasonRegexLikeLiteral = "RegexLikeEquality"
)
