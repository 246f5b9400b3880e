package rewrite

import (
	"github.com/prometheus/prometheus/promql/parser"
)

// Depth returns the nesting depth of a PromQL expression without parsing
// it: the height of the syntax tree the Prometheus parser would build, where
// a selector, number or string is 1 and every other node (parentheses,
// function call, aggregation, binary or unary operator, range or subquery)
// is one more than its deepest child. It runs in time linear in the length
// of the query, on the tokens of Prometheus's own lexer, so string literals,
// escapes and comments are read exactly as the parser reads them.
//
// The parser, the printer and the engine spend time proportional to the
// length times the depth (each level re-checks and re-prints its subtree):
// 100,000 nested unary minus signs took seconds to parse. Checking Depth
// first bounds that work before the parser runs.
//
// For a query the parser accepts, Depth is the height of its tree. Where the
// scan meets what it does not model (duration arithmetic in a range, offset
// or @, or a syntax error), it returns an upper bound: the number of tokens
// of the query, which no tree is higher than. It never returns less than
// the height of a tree the parser builds.
func Depth(query string) int {
	s := scanner{lex: parser.Lex(query)}
	return s.run()
}

// tokenBound is an upper bound of the number of tokens Prometheus's lexer
// reads from q, in one pass over its bytes: every maximal run of letters,
// digits and underscores counts once (an identifier, keyword, number or
// duration never spans anything else), and every other byte but white
// space once (operators, brackets, quotes, a string's contents byte by
// byte). A token always holds one of these, and no two share one.
func tokenBound(q string) int {
	n, inWord := 0, false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			if !inWord {
				n++
			}
			inWord = true
			continue
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		default:
			n++
		}
		inWord = false
	}
	return n
}

// operand is a finished subexpression on the scanner's stack.
type operand struct {
	height int
	number bool // a number literal, which a unary operator folds into
}

// pending is an operator waiting for its right operand.
type pending struct {
	prec  int // precedence; unary operators bind as MUL
	unary bool
	right bool // right-associative (^)
}

// frame is one level of brackets: the top level, parentheses, or the
// arguments of a call or aggregation.
type frame struct {
	kind     frameKind
	operands []operand
	ops      []pending
	maxArg   int  // the highest finished argument of a call
	args     bool // whether any argument was finished
}

type frameKind int

const (
	frameTop frameKind = iota
	frameParen
	frameCall
	frameAggregate // a call that may be followed by by/without (...)
)

type scanner struct {
	lex     *parser.Lexer
	item    parser.Item
	peeked  parser.Item
	hasPeek bool
	tokens  int // tokens read, comments excluded
	max     int // the highest operand finished so far
	// frames are kept (with their stacks) when popped, for reuse.
	frames []frame
	depth  int // frames in use
	// pairs is, summed over the binary operators read, the labels of
	// on/ignoring times those of group_left/group_right: the parser compares
	// each pair (and records an error for each label in both), so that is
	// its cost, which nesting does not show.
	pairs int
}

// maxLabelPairs bounds scanner.pairs: past it, the query is measured by its
// token count (an upper bound of its depth), so that with the default depth
// limit it is refused before the parser runs. Real queries name a handful
// of labels on each side.
const maxLabelPairs = 10000

// precedence of a binary operator as in the parser's grammar
// (generated_parser.y), lowest first; 0 for any other token.
func precedence(t parser.ItemType) int {
	switch t {
	case parser.LOR:
		return 1
	case parser.LAND, parser.LUNLESS:
		return 2
	case parser.EQLC, parser.GTE, parser.GTR, parser.LSS, parser.LTE, parser.NEQ, parser.TRIM_UPPER, parser.TRIM_LOWER:
		return 3
	case parser.ADD, parser.SUB:
		return 4
	case parser.MUL, parser.DIV, parser.MOD, parser.ATAN2:
		return 5
	case parser.POW:
		return 6
	}
	return 0
}

const unaryPrecedence = 5 // %prec MUL

// metricIdentifiers are the tokens the grammar takes as a metric name
// (metric_identifier) besides IDENTIFIER and METRIC_IDENTIFIER.
var metricIdentifiers = map[parser.ItemType]bool{
	parser.AVG: true, parser.BOTTOMK: true, parser.BY: true, parser.COUNT: true, parser.COUNT_VALUES: true,
	parser.FILL: true, parser.FILL_LEFT: true, parser.FILL_RIGHT: true, parser.GROUP: true, parser.IDENTIFIER: true,
	parser.LAND: true, parser.LOR: true, parser.LUNLESS: true, parser.MAX: true, parser.METRIC_IDENTIFIER: true,
	parser.MIN: true, parser.OFFSET: true, parser.QUANTILE: true, parser.STDDEV: true, parser.STDVAR: true,
	parser.SUM: true, parser.TOPK: true, parser.WITHOUT: true, parser.START: true, parser.END: true,
	parser.LIMITK: true, parser.LIMIT_RATIO: true, parser.STEP: true, parser.RANGE: true, parser.ANCHORED: true,
	parser.SMOOTHED: true, parser.MAX_OF: true, parser.MIN_OF: true,
}

func (s *scanner) next() parser.Item {
	if s.hasPeek {
		s.hasPeek = false
		return s.peeked
	}
	return s.read()
}

func (s *scanner) peek() parser.Item {
	if !s.hasPeek {
		s.peeked, s.hasPeek = s.read(), true
	}
	return s.peeked
}

func (s *scanner) read() parser.Item {
	it := &s.item // the lexer keeps the pointer: one item for all reads
	for {
		s.lex.NextItem(it)
		if it.Typ != parser.COMMENT {
			break
		}
	}
	if it.Typ != parser.EOF && it.Typ != parser.ERROR {
		s.tokens++
	}
	return *it
}

// bound gives up on modelling the rest of the query: it reads the rest and
// returns the number of tokens, an upper bound of any tree's height (every
// node has a token of its own).
func (s *scanner) bound() int {
	for {
		if t := s.next().Typ; t == parser.EOF || t == parser.ERROR {
			return max(s.max, s.tokens)
		}
	}
}

func (s *scanner) top() *frame { return &s.frames[s.depth-1] }

// open starts a frame, reusing the stacks of one popped before.
func (s *scanner) open(kind frameKind) {
	if s.depth == len(s.frames) {
		s.frames = append(s.frames, frame{})
	}
	f := &s.frames[s.depth]
	*f = frame{kind: kind, operands: f.operands[:0], ops: f.ops[:0]}
	s.depth++
}

func (s *scanner) run() int {
	s.open(frameTop)
	expectOperand := true
	for {
		if expectOperand {
			ok := s.operand()
			if !ok {
				return s.bound()
			}
			expectOperand = false
			continue
		}
		it := s.next()
		f := s.top()
		switch t := it.Typ; {
		case precedence(t) > 0:
			s.reduce(f, precedence(t), t != parser.POW)
			f.ops = append(f.ops, pending{prec: precedence(t), right: t == parser.POW})
			if !s.binModifiers() {
				return s.bound()
			}
			expectOperand = true
		case t == parser.LEFT_BRACKET:
			if !s.rangeOrSubquery(f) {
				return s.bound()
			}
		case t == parser.OFFSET:
			// offset [+-]literal ends there; duration arithmetic is not modelled.
			if !s.signedLiteral() {
				return s.bound()
			}
		case t == parser.AT:
			if !s.atModifier() {
				return s.bound()
			}
		case t == parser.ANCHORED || t == parser.SMOOTHED:
			// Modifiers of a selector: no node of their own.
		case t == parser.COMMA:
			if f.kind != frameCall && f.kind != frameAggregate {
				return s.bound()
			}
			s.finishArg(f)
			expectOperand = true
		case t == parser.RIGHT_PAREN:
			kind := f.kind
			if kind == frameTop {
				return s.bound()
			}
			s.closeFrame()
			if kind == frameAggregate && !s.optionalGrouping() {
				return s.bound()
			}
		case t == parser.EOF:
			if f.kind != frameTop || s.depth != 1 {
				return s.bound()
			}
			s.reduce(f, 0, true)
			if len(f.operands) != 1 {
				return s.bound()
			}
			return max(s.max, f.operands[0].height)
		default:
			return s.bound()
		}
	}
}

// operand reads what may start an operand: unary operators, then a
// selector, literal, call, aggregation or an opening parenthesis (which
// opens a frame; its operand is pushed when it closes). ok is false for
// anything else.
func (s *scanner) operand() bool {
	for {
		f := s.top()
		it := s.next()
		switch t := it.Typ; {
		case t == parser.ADD || t == parser.SUB:
			f.ops = append(f.ops, pending{prec: unaryPrecedence, unary: true})
		case t == parser.NUMBER || t == parser.DURATION:
			s.push(f, operand{height: 1, number: true})
			return true
		case t == parser.STRING:
			s.push(f, operand{height: 1})
			return true
		case t == parser.LEFT_BRACE:
			if !s.skipBraces() {
				return false
			}
			s.push(f, operand{height: 1})
			return true
		case t == parser.LEFT_PAREN:
			s.open(frameParen)
		case t.IsAggregator() && (s.peek().Typ == parser.LEFT_PAREN || s.peek().Typ == parser.BY || s.peek().Typ == parser.WITHOUT):
			if s.peek().Typ != parser.LEFT_PAREN && !s.grouping() {
				return false
			}
			if s.next().Typ != parser.LEFT_PAREN {
				return false
			}
			if done, ok := s.openCall(frameAggregate); done || !ok {
				return ok
			}
		case metricIdentifiers[t] && s.peek().Typ == parser.LEFT_PAREN:
			s.next()
			if done, ok := s.openCall(frameCall); done || !ok {
				return ok
			}
		case metricIdentifiers[t]:
			if s.peek().Typ == parser.LEFT_BRACE {
				s.next()
				if !s.skipBraces() {
					return false
				}
			}
			s.push(f, operand{height: 1})
			return true
		default:
			return false
		}
	}
}

// openCall opens the argument frame of a call whose "(" was read. An empty
// argument list closes it at once: the call is a finished operand (done).
// Otherwise the operand loop goes on with the first argument.
func (s *scanner) openCall(kind frameKind) (done, ok bool) {
	s.open(kind)
	if s.peek().Typ != parser.RIGHT_PAREN {
		return false, true
	}
	s.next()
	s.closeFrame()
	if kind == frameAggregate {
		return true, s.optionalGrouping()
	}
	return true, true
}

// push puts a finished operand on f's stack.
func (s *scanner) push(f *frame, o operand) {
	s.max = max(s.max, o.height)
	f.operands = append(f.operands, o)
}

// reduce applies pending operators of f that bind at least as tightly as an
// incoming binary operator of precedence prec (left-associative if left),
// as the parser's precedence rules decide; prec 0 applies them all.
func (s *scanner) reduce(f *frame, prec int, left bool) {
	for len(f.ops) > 0 {
		op := f.ops[len(f.ops)-1]
		if prec > 0 && !(op.prec > prec || (op.prec == prec && left)) {
			return
		}
		f.ops = f.ops[:len(f.ops)-1]
		if op.unary {
			o := &f.operands[len(f.operands)-1]
			if !o.number { // the parser folds -1 into a number literal
				o.height++
				s.max = max(s.max, o.height)
			}
			continue
		}
		n := len(f.operands)
		r := operand{height: 1 + max(f.operands[n-2].height, f.operands[n-1].height)}
		f.operands = f.operands[:n-2]
		s.push(f, r)
	}
}

// finishArg ends one argument of a call frame.
func (s *scanner) finishArg(f *frame) {
	s.reduce(f, 0, true)
	if len(f.operands) > 0 {
		f.maxArg = max(f.maxArg, f.operands[len(f.operands)-1].height)
		f.args = true
	}
	f.operands = f.operands[:0]
}

// closeFrame ends the innermost frame at its ")" and pushes its node onto
// the enclosing frame: parentheses one above their content, a call one
// above its highest argument.
func (s *scanner) closeFrame() {
	f := s.top()
	var o operand
	if f.kind == frameParen {
		s.reduce(f, 0, true)
		o = operand{height: 1 + f.operands[len(f.operands)-1].height}
	} else {
		s.finishArg(f)
		o = operand{height: 1 + f.maxArg}
	}
	s.depth--
	s.push(s.top(), o)
}

// rangeOrSubquery reads a range or subquery after its "[": the node is one
// above the operand it applies to (the innermost one: brackets bind tighter
// than any operator). Plain durations are no nodes; anything else in the
// brackets counts as high as its number of tokens.
func (s *scanner) rangeOrSubquery(f *frame) bool {
	if len(f.operands) == 0 {
		return false
	}
	tokens, plain := 0, true
	for last := parser.ItemType(parser.LEFT_BRACKET); ; {
		it := s.next()
		switch it.Typ {
		case parser.RIGHT_BRACKET:
			o := &f.operands[len(f.operands)-1]
			inner := 0
			if !plain {
				inner = tokens
			}
			*o = operand{height: 1 + max(o.height, inner)}
			s.max = max(s.max, o.height)
			return true
		case parser.EOF, parser.ERROR:
			return false
		case parser.NUMBER, parser.DURATION:
			plain = plain && (last == parser.LEFT_BRACKET || last == parser.COLON)
		case parser.COLON:
			plain = plain && last != parser.LEFT_BRACKET && last != parser.COLON
		default:
			plain = false
		}
		tokens++
		last = it.Typ
	}
}

// signedLiteral reads signs, then a number or duration (an offset, which
// folds any number of signs into the literal). ok is false for anything
// else, such as duration arithmetic, which is not modelled.
func (s *scanner) signedLiteral() bool {
	it := s.next()
	for it.Typ == parser.ADD || it.Typ == parser.SUB {
		it = s.next()
	}
	if it.Typ != parser.NUMBER && it.Typ != parser.DURATION {
		return false
	}
	// "offset 1m + 1m" would be read as duration arithmetic by a different
	// rule only inside brackets; here the literal ends the offset. Anything
	// unusual right after is left to the caller's switch.
	return true
}

// atModifier reads what follows "@": a number with at most one sign, or
// start() or end().
func (s *scanner) atModifier() bool {
	switch it := s.next(); it.Typ {
	case parser.START, parser.END:
		return s.next().Typ == parser.LEFT_PAREN && s.next().Typ == parser.RIGHT_PAREN
	case parser.ADD, parser.SUB:
		t := s.next().Typ
		return t == parser.NUMBER || t == parser.DURATION
	case parser.NUMBER, parser.DURATION:
		return true
	}
	return false
}

// binModifiers reads the modifiers of a binary operator: bool, on/ignoring
// (labels), group_left/group_right [(labels)], fill*(number).
func (s *scanner) binModifiers() bool {
	on, group := 0, 0
	for {
		switch s.peek().Typ {
		case parser.BOOL:
			s.next()
		case parser.ON, parser.IGNORING:
			s.next()
			n := s.tokens
			if !s.grouping() {
				return false
			}
			on += s.tokens - n
		case parser.GROUP_LEFT, parser.GROUP_RIGHT:
			s.next()
			n := s.tokens
			if s.peek().Typ == parser.LEFT_PAREN && !s.labelList() {
				return false
			}
			group += s.tokens - n
			// Tokens, not labels: about twice as many (commas), an upper
			// bound that keeps the count simple.
			if s.pairs += on * group; s.pairs > maxLabelPairs {
				return false
			}
		case parser.FILL, parser.FILL_LEFT, parser.FILL_RIGHT:
			s.next()
			if !s.labelList() { // "(" [+-] number ")": no nesting either
				return false
			}
		default:
			return true
		}
	}
}

// grouping reads "by"/"without"/"on"/"ignoring"'s "(labels)": the keyword
// itself, if not yet read, is skipped by the caller's peek.
func (s *scanner) grouping() bool {
	if t := s.peek().Typ; t == parser.BY || t == parser.WITHOUT {
		s.next()
	}
	if s.peek().Typ != parser.LEFT_PAREN {
		return false
	}
	return s.labelList()
}

// optionalGrouping reads a by/without clause after an aggregation's body.
func (s *scanner) optionalGrouping() bool {
	if t := s.peek().Typ; t == parser.BY || t == parser.WITHOUT {
		return s.grouping()
	}
	return true
}

// labelList reads "(" ... ")" holding no parentheses (labels, strings,
// commas, a number): no node and no nesting.
func (s *scanner) labelList() bool {
	if s.next().Typ != parser.LEFT_PAREN {
		return false
	}
	for {
		switch s.next().Typ {
		case parser.RIGHT_PAREN:
			return true
		case parser.LEFT_PAREN, parser.EOF, parser.ERROR:
			return false
		}
	}
}

// skipBraces reads the matchers of a selector up to "}" (the lexer allows
// no nesting inside braces).
func (s *scanner) skipBraces() bool {
	for {
		switch s.next().Typ {
		case parser.RIGHT_BRACE:
			return true
		case parser.EOF, parser.ERROR:
			return false
		}
	}
}
