// The edge node: the property's own server for POS terminals and parking barriers (DESIGN §4).
// Its store, services and sync client arrive with the edge node issue; this file keeps the target.

/// Names shared by the edge node's parts.
package enum EdgeNode {}
