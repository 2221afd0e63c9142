"""Self-supervised target models shared by methods and tasks (e.g. the Barlow Twins
target of KRR-ST, also used by Kmeans and the transfer task)."""
