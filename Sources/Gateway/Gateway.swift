// The gateway: one true balance per member, sync with every edge, conflicts, settlement (DESIGN
// §5-§7). Its store and services arrive with the gateway issue; this file keeps the target.

/// Names shared by the gateway's parts.
package enum Gateway {}
